"""The calendar file attached to confirmations and notices is exactly what icalendar writes for it, whatever
the clinic's names, the appointment ids and the times (a calendar app reads it as icalendar's own)."""
from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar, Event, vCalAddress, vText

from shared.delivery.calendar import CalendarEntry, calendar_uid, invitation


def icalendar_invitation(entries: list[CalendarEntry], *, summary: str, location: str, organizer_name: str,
                         organizer_email: str, cancelled: bool, stamp: datetime) -> bytes:
    """The invitation built property by property with icalendar."""
    calendar = Calendar()
    calendar.add("prodid", "-//clinic-notify//appointments//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancelled else "REQUEST")
    for entry in entries:
        event = Event()
        event.add("uid", calendar_uid(entry.appointment_id))
        event.add("sequence", entry.sequence)
        event.add("dtstamp", stamp.astimezone(UTC))
        event.add("dtstart", entry.starts_at.astimezone(UTC))
        event.add("dtend", entry.ends_at.astimezone(UTC))
        event.add("summary", summary)
        event.add("location", location)
        event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
        organizer = vCalAddress(f"mailto:{organizer_email}")
        organizer.params["cn"] = vText(organizer_name)
        event["organizer"] = organizer
        calendar.add_component(event)
    content: bytes = calendar.to_ical()
    return content


text = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=120)
zones = st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))])
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=zones)
# Ids as the booking system makes them, of every length around where a line folds, and anything else.
appointment_ids = st.one_of(
    st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=80).map(lambda tail: f"apt-{tail}"),
    st.text(string.ascii_letters + string.digits + "-,;\\:", min_size=1, max_size=80), text)
entries = st.lists(st.builds(CalendarEntry, appointment_ids, st.integers(1, 10_000), moments, moments),
                   min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(entries=entries, summary=text, location=text, organizer_name=text, cancelled=st.booleans(), stamp=moments,
       organizer_email=st.sampled_from(["desk@harbourfront-clinic.example", "a.very.long.address.for.the.front."
                                        "desk.of.the.clinic@harbourfront-sports-medicine.example"]))
def test_an_invitation_is_what_icalendar_writes_for_it(
    entries: list[CalendarEntry], summary: str, location: str, organizer_name: str, organizer_email: str,
    cancelled: bool, stamp: datetime,
) -> None:
    attachment = invitation(entries, summary=summary, location=location, organizer_name=organizer_name,
                            organizer_email=organizer_email, cancelled=cancelled, stamp=stamp)

    assert attachment.content == icalendar_invitation(
        entries, summary=summary, location=location, organizer_name=organizer_name,
        organizer_email=organizer_email, cancelled=cancelled, stamp=stamp)
    assert attachment.mime_type == f"text/calendar; method={'CANCEL' if cancelled else 'REQUEST'}"


@pytest.mark.parametrize("length", range(1, 91))
def test_an_appointment_id_of_any_length_is_folded_as_icalendar_folds_it(length: int) -> None:
    entry = CalendarEntry("apt-" + "7" * length, 2, datetime(2026, 11, 30, 15, tzinfo=UTC),
                          datetime(2026, 11, 30, 15, 45, tzinfo=UTC))
    names = {"summary": "Physiotherapy – Harbourfront", "location": "Downtown, 1 Queen St W",
             "organizer_name": "Harbourfront", "organizer_email": "desk@harbourfront-clinic.example"}
    stamp = datetime(2026, 11, 27, 9, 30, 5, 123, tzinfo=UTC)

    assert invitation([entry], cancelled=False, stamp=stamp, **names).content == icalendar_invitation(
        [entry], cancelled=False, stamp=stamp, **names)
