"""A plan's confirmation holds one calendar entry per session; a later notice touches one entry only."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from icalendar import Calendar

from services.notifier.domain.decisions import decide
from services.notifier.domain.state import AppointmentState
from shared.channels.messages import EmailMessage
from shared.clinic_config import load_clinic_config
from shared.delivery.compose import MessageComposer
from shared.events.appointment import AppointmentEvent
from shared.ledger.model import DeliveryIntent
from shared.links import PatientLinks
from shared.templates.catalogue import TemplateCatalogue
from tests.support.deliveries import claimed
from tests.support.events import cancelled, patient, rescheduled
from tests.unit.notifier.test_series_decisions import NOW, plan

CLINIC = load_clinic_config(Path(__file__).resolve().parents[2] / "deploy" / "clinic.yaml")
COMPOSER = MessageComposer(TemplateCatalogue(), CLINIC, PatientLinks("https://care.example", "test-secret"))


def email_of(intent: DeliveryIntent) -> EmailMessage:
    return COMPOSER.email(claimed(intent), NOW)


def calendar_of(message: EmailMessage) -> Calendar:
    [attachment] = [a for a in message.attachments if a.mime_type.startswith("text/calendar")]
    return Calendar.from_ical(attachment.content)


def only(intents: tuple[DeliveryIntent, ...], template: str) -> DeliveryIntent:
    [intent] = [i for i in intents if i.template == template and i.channel == "email"]
    return intent


def test_the_plan_confirmation_carries_one_calendar_file_with_an_entry_per_session() -> None:
    bookings = plan(6)
    confirmation = only(decide(bookings[3], None, {}, CLINIC, NOW).intents, "series_confirmation")

    message = email_of(confirmation)
    calendar = calendar_of(message)

    assert calendar["method"] == "REQUEST"
    entries = calendar.walk("VEVENT")
    assert [str(e["uid"]) for e in entries] == [f"{b.appointment_id}@clinic-notify" for b in bookings]
    assert [e.decoded("dtstart") for e in entries] == [b.appointment.starts_at.astimezone(UTC) for b in bookings]
    assert {int(e.decoded("sequence")) for e in entries} == {1}
    assert message.subject.startswith("Your 6 appointments")
    assert message.text.count(" at 5:30\u202fp.m.") + message.text.count(" at 5:30 p.m.") == 6


def test_a_plan_confirmation_in_french_lists_every_session_in_french() -> None:
    bookings = [b.model_copy(update={"patient": patient(locale="fr-CA")}) for b in plan(6)]
    intents = decide(bookings[0], None, {}, CLINIC, NOW).intents
    message = email_of(only(intents, "series_confirmation"))
    [sms] = [i for i in intents if i.template == "series_confirmation" and i.channel == "sms"]

    assert "6 rendez-vous" in message.subject
    assert message.text.count(" à 17 h 30") == 6
    assert "6 rendez-vous" in COMPOSER.sms(claimed(sms)).body


def _state(event: AppointmentEvent) -> AppointmentState:
    return AppointmentState(event.appointment_id, event.sequence, "booked", event.model_dump_json())


def test_cancelling_one_session_cancels_that_entry_only() -> None:
    third = plan(6)[2]
    cancel = cancelled(third, sequence=2).model_copy(update={"series": third.series})
    notice = only(decide(cancel, _state(third), {}, CLINIC, NOW).intents, "cancellation_notice")

    calendar = calendar_of(email_of(notice))

    assert calendar["method"] == "CANCEL"
    [entry] = calendar.walk("VEVENT")
    assert str(entry["uid"]) == "plan-7.3@clinic-notify"
    assert int(entry.decoded("sequence")) == 2
    assert entry.decoded("dtstart") == third.appointment.starts_at.astimezone(UTC)


def test_moving_one_session_updates_that_entry_with_a_higher_sequence() -> None:
    second = plan(6)[1]
    moved_to = datetime(2026, 12, 9, 9, 0, tzinfo=UTC)
    moved = rescheduled(second, moved_to, sequence=2).model_copy(update={"series": second.series})
    notice = only(decide(moved, _state(second), {}, CLINIC, NOW).intents, "reschedule_notice")

    calendar = calendar_of(email_of(notice))

    assert calendar["method"] == "REQUEST"
    [entry] = calendar.walk("VEVENT")
    assert (str(entry["uid"]), int(entry.decoded("sequence"))) == ("plan-7.2@clinic-notify", 2)
    assert entry.decoded("dtstart") == moved_to
