"""`clinic-notify scheduled`, `status` and `deliveries`: what the delivery ledgers hold, without
recipients or message bodies."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from rich.text import Text

from cli.options import DEFAULT_CONFIG, ClinicConfigFile, DatabaseUrl
from cli.output import local_time, stdout
from cli.reading import clinic_time_zone, read_database
from shared.ledger.model import Delivery
from shared.ledger.reports import LedgerStatus, MessageHistory, appointment_history, ledger_status, scheduled
from shared.observability import redact_text

T = TypeVar("T")


LEDGER = "the delivery ledger"


def register(app: typer.Typer) -> None:
    app.command("scheduled")(show_scheduled)
    app.command("status")(show_status)
    app.command("deliveries")(show_deliveries)


def show_scheduled(
    database_url: DatabaseUrl,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 50,
    appointment: Annotated[str | None, typer.Option(
        help="Every message of this appointment id, in any status.")] = None,
    clinic_config: ClinicConfigFile = DEFAULT_CONFIG,
) -> None:
    """What is scheduled: due time (clinic time), appointment, step, channel, template, status, attempts."""
    time_zone = clinic_time_zone(clinic_config)
    rows = read_database(database_url, lambda engine: scheduled(engine, limit, appointment), LEDGER)
    stdout().print(_scheduled_table(rows, time_zone))


def show_status(
    database_url: DatabaseUrl,
    failed_limit: Annotated[int, typer.Option(min=1, help="At most this many failed messages.")] = 50,
    clinic_config: ClinicConfigFile = DEFAULT_CONFIG,
) -> None:
    """Messages by status, the oldest pending due time and the failed messages with their errors."""
    time_zone = clinic_time_zone(clinic_config)
    status = read_database(database_url, lambda engine: ledger_status(engine, failed_limit), LEDGER)
    _print_status(status, time_zone)


def show_deliveries(
    appointment_id: Annotated[str, typer.Argument(help="The appointment id.")],
    database_url: DatabaseUrl,
    aftercare_database_url: Annotated[str | None, typer.Option(
        "--aftercare-database-url", envvar="AFTERCARE_DATABASE_URL", show_envvar=True,
        help="SQLAlchemy URL of aftercare's ledger (check-ins); left out: the notifier's only.")] = None,
    clinic_config: ClinicConfigFile = DEFAULT_CONFIG,
) -> None:
    """Every message of one appointment, from the notifier's and aftercare's ledgers: when it was
    intended, claimed and handed to the provider, what the provider said (delivered, undelivered and
    its code), why it was skipped or cancelled, and the fallbacks. No addresses, no message bodies."""
    time_zone = clinic_time_zone(clinic_config)
    ledgers = {"notifier": database_url} | ({"aftercare": aftercare_database_url} if aftercare_database_url else {})
    console = stdout()
    found = 0
    for service, url in ledgers.items():
        rows = read_database(url, lambda engine: appointment_history(engine, appointment_id), f"the {service} ledger")
        found += len(rows)
        if rows:
            console.print(_history_table(service, rows, time_zone))
    if not found:
        console.print(Text(f"No message recorded for appointment {appointment_id}."))


def _history_table(service: str, rows: list[MessageHistory], time_zone: str) -> Table:
    table = Table(title=f"Messages sent by {service} (times in {time_zone})")
    # What an operator scans for stays whole; times and reasons wrap.
    for name in ("step", "channel", "template", "version"):
        table.add_column(name, no_wrap=True)
    for name in ("intended", "claimed", "sent"):
        table.add_column(name, overflow="fold")
    for name in ("status", "attempts", "provider"):
        table.add_column(name, no_wrap=True)
    table.add_column("provider at", overflow="fold")
    table.add_column("code", no_wrap=True)
    table.add_column("why", overflow="fold")
    table.add_column("fallback", no_wrap=True)
    steps = {row.id: row.step for row in rows}
    replaced_by = {row.fallback_of: row for row in rows if row.fallback_of}
    for row in rows:
        fallback = "—"
        if row.id in replaced_by:
            fallback = f"→ {replaced_by[row.id].channel}"
        elif row.fallback_of:
            fallback = f"instead of {steps.get(row.fallback_of, row.fallback_of)}"
        table.add_row(
            Text(row.step), row.channel, Text(row.template), str(row.appointment_version),
            _short_time(row.created_at, time_zone), _short_time(row.attempt_started_at, time_zone),
            _short_time(row.sent_at, time_zone), row.status, str(row.attempts), row.provider_status or "—",
            _short_time(row.provider_status_at, time_zone), Text(row.provider_error_code or row.error_code or "—"),
            Text(redact_text(row.reason or "—")), Text(fallback),
        )
    return table


def _short_time(moment: datetime | None, time_zone: str) -> str:
    """Month, day and time in the clinic's zone (named in the table's title)."""
    return "—" if moment is None else moment.astimezone(ZoneInfo(time_zone)).strftime("%m-%d %H:%M:%S")


def _scheduled_table(rows: list[Delivery], time_zone: str) -> Table:
    table = Table("due", "appointment", "step", "channel", "template", "status", "attempts",
                  title=f"Scheduled messages (due times in {time_zone})")
    for row in rows:
        table.add_row(local_time(row.due_at, time_zone), Text(row.appointment_id), Text(row.step),
                      row.channel, Text(row.template), row.status.value, str(row.attempts))
    return table


def _print_status(status: LedgerStatus, time_zone: str) -> None:
    console = stdout()
    counts = Table("status", "messages", title="Messages by status")
    for name, count in sorted(status.counts.items()):
        counts.add_row(name, str(count))
    counts.add_row("total", str(sum(status.counts.values())), style="bold")
    console.print(counts)
    console.print(f"Oldest pending message due: {local_time(status.oldest_pending_due, time_zone)}", markup=False)
    if not status.failed:
        console.print("No failed messages.")
        return
    failed = Table("failed at", "appointment", "step", "channel", "template", "error code", "reason",
                   title="Failed messages (newest first)")
    for row in status.failed:
        failed.add_row(local_time(row.updated_at, time_zone), Text(row.appointment_id), Text(row.step),
                       row.channel, Text(row.template), row.error_code or "—", Text(redact_text(row.reason or "—")))
    console.print(failed)
