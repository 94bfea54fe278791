"""Turns a recorded delivery into the email or SMS a channel sends."""
from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.channels.messages import Attachment, EmailMessage, SmsMessage
from shared.clinic_config import ClinicConfig
from shared.delivery.calendar import CalendarEntry, appointment_invitation, invitation
from shared.delivery.series import SERIES_CONFIRMATION
from shared.ledger.model import Delivery, is_staff_template
from shared.links import PatientLinks
from shared.screening_links import screening_link
from shared.templates.catalogue import TemplateCatalogue
from shared.templates.formatting import appointment_type_name

CALENDAR_TEMPLATES = {"confirmation": False, "reschedule_notice": False, "cancellation_notice": True}


class LinksOnDemand(dict[str, Any]):
    """The patient's links of one message, each made the first time its template (or a header) reads it.

    Each is an encrypted token: most templates show one or two of them (a confirmation its unsubscribe
    link, a text none), and making every one for every message was a tenth of a dispatcher's CPU. Once
    made, a link is kept: the text part, the HTML part and the List-Unsubscribe header show the same one.
    A name that is no link is a KeyError, as in any dict (a template's typo fails, not renders blank);
    `get` and `in` know every link, made or not (templates ask `links.get("screening")`). A maker must
    not hold the context that holds the links: each message's context would then be a reference cycle,
    freed by the cycle collector instead of when it is sent.
    """

    def __init__(self, makers: dict[str, Callable[[], Any]]) -> None:
        super().__init__()
        self._makers = makers

    def __missing__(self, name: str) -> Any:
        value = self[name] = self._makers[name]()
        return value

    def __contains__(self, name: object) -> bool:
        return name in self._makers or super().__contains__(name)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default


class MessageComposer:
    def __init__(self, catalogue: TemplateCatalogue, clinic: ClinicConfig, links: PatientLinks) -> None:
        self.catalogue = catalogue
        self.clinic = clinic
        self.links = links

    def render_context(
        self, stored: dict[str, Any], channel: str, recipient: str, locale: str, staff: bool = False
    ) -> dict[str, Any]:
        """The stored appointment context plus the clinic, the location and the patient's links."""
        context = dict(stored)
        location_id = context.get("appointment", {}).get("location_id", "")
        location = self.clinic.location(location_id)
        identity = self.clinic.clinic
        check_in_id = context.get("extra", {}).get("check_in_id")
        context["clinic"] = {
            "name": identity.name,
            "phone": identity.phone,
            "email": identity.email,
            "website": str(identity.website),
            "mailing_address": identity.mailing_address,
        }
        context["location"] = (
            {"name": location.name, "address": location.address, "phone": location.phone}
            if location
            else {"name": identity.name, "address": identity.mailing_address, "phone": identity.phone}
        )
        links = self.links
        context["links"] = LinksOnDemand({
            # Staff messages are not subject to patient consent: no unsubscribe to offer.
            "unsubscribe": lambda: None if staff else links.unsubscribe_url(channel, recipient, locale),
            "check_in": lambda: links.check_in_url(check_in_id) if check_in_id else None,
            "scores": lambda: links.score_urls(check_in_id) if check_in_id else [],
            # The pre-visit questions, for the appointment types that ask some (patient emails only).
            "screening": lambda: (None if staff or channel != "email"
                                  else screening_link(links, self.clinic, stored, locale)),
        })
        return context

    def email(self, delivery: Delivery, now: datetime) -> EmailMessage:
        staff = is_staff_template(delivery.template)
        context = self.render_context(
            delivery.context, delivery.channel, delivery.recipient, delivery.locale, staff
        )
        rendered = self.catalogue.render_email(delivery.template, delivery.locale, context)
        attachments: tuple[Attachment, ...] = ()
        if delivery.template == SERIES_CONFIRMATION:
            attachments = (self.plan_invitation(context, delivery.locale, now),)
        elif delivery.template in CALENDAR_TEMPLATES:
            appointment = context["appointment"]
            attachments = (
                appointment_invitation(
                    appointment_id=appointment["id"],
                    sequence=appointment["sequence"],
                    starts_at=datetime.fromisoformat(appointment["starts_at"]),
                    ends_at=datetime.fromisoformat(appointment["ends_at"]),
                    summary=f"{appointment_type_name(appointment['type'], delivery.locale).capitalize()}"
                    f" – {self.clinic.clinic.name}",
                    location=f"{context['location']['name']}, {context['location']['address']}",
                    organizer_name=self.clinic.clinic.name,
                    organizer_email=str(self.clinic.clinic.email),
                    cancelled=CALENDAR_TEMPLATES[delivery.template],
                    stamp=now,
                ),
            )
        attachments += inline_images(context, rendered.html)
        return EmailMessage(
            to=delivery.recipient,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            attachments=attachments,
            # Derived from the ledger row: a resend after a crash carries the same Message-ID.
            message_id=f"<{delivery.id}@clinic-notify>",
            headers={} if staff else {
                "List-Unsubscribe": f"<{context['links']['unsubscribe']}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )

    def plan_invitation(self, context: dict[str, Any], locale: str, now: datetime) -> Attachment:
        """One calendar file with a VEVENT per session of the plan, each under its appointment's UID."""
        appointment = context["appointment"]
        return invitation(
            [
                CalendarEntry(
                    session["appointment_id"],
                    session["sequence"],
                    datetime.fromisoformat(session["starts_at"]),
                    datetime.fromisoformat(session["ends_at"]),
                )
                for session in context["series"]["sessions"]
            ],
            summary=f"{appointment_type_name(appointment['type'], locale).capitalize()} – {self.clinic.clinic.name}",
            location=f"{context['location']['name']}, {context['location']['address']}",
            organizer_name=self.clinic.clinic.name,
            organizer_email=str(self.clinic.clinic.email),
            cancelled=False,
            stamp=now,
            filename="appointments.ics",
        )

    def sms(self, delivery: Delivery) -> SmsMessage:
        body = self.sms_text(delivery.template, delivery.locale, delivery.context, delivery.recipient)
        return SmsMessage(to=delivery.recipient, body=body)

    def sms_text(self, template: str, locale: str, stored: dict[str, Any], recipient: str) -> str:
        context = self.render_context(stored, "sms", recipient, locale, is_staff_template(template))
        return self.catalogue.render_sms(template, locale, context)


def inline_images(context: dict[str, Any], html: str) -> tuple[Attachment, ...]:
    """Pictures the stored context carries for the HTML to show by "cid:" reference (base64 content).

    Only those the rendered HTML refers to are attached: a template that shows none sends none."""
    return tuple(
        Attachment(image["filename"], base64.b64decode(image["base64"]), image["mime_type"],
                   content_id=image["content_id"])
        for image in context.get("extra", {}).get("inline_images", [])
        if f"cid:{image['content_id']}" in html
    )
