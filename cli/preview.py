"""`clinic-notify preview`: a template rendered exactly as a patient gets it, from sample data."""
from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError
from rich.table import Table

from cli.options import DEFAULT_CONFIG, ClinicConfigFile
from cli.output import fail, stdout
from cli.sample_delivery import delivery_for_event, sample_delivery
from cli.sms_segments import sms_size
from shared.channels.messages import EmailMessage
from shared.clinic_config import ClinicConfig, ClinicConfigError, load_clinic_config
from shared.consumer import describe_validation_error
from shared.delivery.compose import MessageComposer
from shared.events.appointment import (
    AppointmentEvent,
    AppointmentType,
    parse_appointment_event,
)
from shared.links import PatientLinks
from shared.templates.catalogue import LOCALES, Locale, TemplateCatalogue
from shared.templates.sample import SAMPLE_BASE_URL


class Channel(StrEnum):
    email = "email"
    sms = "sms"


def register(app: typer.Typer) -> None:
    app.command("preview")(preview)


def preview(
    template: Annotated[str | None, typer.Argument(help="Template name, e.g. confirmation.")] = None,
    channel: Annotated[Channel, typer.Option(help="Which channel's version.")] = Channel.sms,
    locale: Annotated[Locale, typer.Option(help="The patient's language.")] = "en-CA",
    appointment_type: Annotated[AppointmentType, typer.Option("--type", help="The visit's treatment.")] = (
        AppointmentType.DRY_NEEDLING
    ),
    starts_at: Annotated[str | None, typer.Option(
        help="Visit start, ISO 8601; clinic time if no offset. Default: 10:00 in a week.")] = None,
    out: Annotated[Path | None, typer.Option(
        file_okay=False, help="Also write the files sent (.html, .ics) here.")] = None,
    list_templates: Annotated[bool, typer.Option("--list", help="List the templates and their channels.")] = False,
    event_file: Annotated[Path | None, typer.Option(
        "--event", exists=True, dir_okay=False,
        help="Render for this appointment event (JSON, as published) instead of sample data; "
             "its patient's language wins.")] = None,
    clinic_config: ClinicConfigFile = DEFAULT_CONFIG,
) -> None:
    """Render a message template exactly as a patient (or the on-call clinician) receives it."""
    catalogue = TemplateCatalogue()
    if list_templates:
        _print_catalogue(catalogue)
        return
    if template is None:
        fail("give a TEMPLATE to preview, or --list to see them")
    event = _read_event(event_file) if event_file else None
    language = event.patient.locale if event else locale
    if (language, template, channel.value) not in catalogue.available():
        known = sorted({name for _, name, kind in catalogue.available() if kind == channel.value})
        fail(f"no {channel.value} template {template!r} in {locale}; known: {', '.join(known)}")
    clinic = _load(clinic_config)
    start = _parse_start(starts_at, clinic.clinic.time_zone)
    composer = MessageComposer(catalogue, clinic, PatientLinks(SAMPLE_BASE_URL, "preview-only"))
    delivery = (delivery_for_event(template, channel.value, event) if event
                else sample_delivery(template, channel.value, language, appointment_type.value, start))
    if channel is Channel.sms:
        _show_sms(composer.sms(delivery).body, out, f"{template}.{language}")
    else:
        _show_email(composer.email(delivery, datetime.now(UTC)), out, f"{template}.{language}")


def _read_event(path: Path) -> AppointmentEvent:
    try:
        return parse_appointment_event(path.read_bytes())
    except ValidationError as error:
        fail(f"{path}: not a valid appointment event: {describe_validation_error(error)}")


def _load(path: Path) -> ClinicConfig:
    try:
        return load_clinic_config(path)
    except ClinicConfigError as error:
        fail(str(error))


def _parse_start(value: str | None, time_zone: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--starts-at {value!r} is not an ISO 8601 date-time, e.g. 2026-07-14T16:00")
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(time_zone))


def _print_catalogue(catalogue: TemplateCatalogue) -> None:
    available = catalogue.available()
    table = Table("template", *(f"{locale} channels" for locale in LOCALES))
    for name in sorted({name for _, name, _ in available}):
        channels = [sorted(kind for where, what, kind in available if (where, what) == (locale, name))
                    for locale in LOCALES]
        table.add_row(name, *(", ".join(kinds) for kinds in channels))
    stdout().print(table)


def _show_sms(body: str, out: Path | None, stem: str) -> None:
    console = stdout()
    console.print(body, markup=False, soft_wrap=True)
    size = sms_size(body)
    console.print(
        f"\n{size.length} characters, {size.encoding}, {size.segments} segment(s) of up to {size.per_segment}",
        markup=False,
        soft_wrap=True,
    )
    if size.forcing_ucs2:
        console.print(f"not in GSM-7 (forces UCS-2): {' '.join(size.forcing_ucs2)}", markup=False, soft_wrap=True)
    if out is not None:
        _write(out / f"{stem}.sms.txt", body.encode("utf-8"))


def _show_email(message: EmailMessage, out: Path | None, stem: str) -> None:
    console = stdout()
    console.print(f"Subject: {message.subject}\n", markup=False, soft_wrap=True)
    console.print(message.text, markup=False, soft_wrap=True)
    for attachment in message.attachments:
        console.print(f"attachment: {attachment.filename} ({attachment.mime_type})", markup=False, soft_wrap=True)
    if out is not None:
        _write(out / f"{stem}.email.html", message.html.encode("utf-8"))
        for attachment in message.attachments:
            _write(out / f"{stem}{Path(attachment.filename).suffix or '.bin'}", attachment.content)


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    stdout().print(f"wrote {path}", markup=False, soft_wrap=True)
