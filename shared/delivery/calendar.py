"""The .ics invitation attached to confirmation, reschedule and cancellation emails.

One VEVENT per appointment, its UID derived from the appointment id alone: a plan's confirmation
holds one VEVENT per session, and a later notice about one session (a REQUEST with a higher
SEQUENCE, or a CANCEL) replaces that session's entry and no other.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from icalendar import Calendar, Event, vCalAddress, vText

from shared.channels.messages import Attachment


@dataclass(frozen=True)
class CalendarEntry:
    appointment_id: str
    sequence: int
    starts_at: datetime
    ends_at: datetime


def calendar_uid(appointment_id: str) -> str:
    return f"{appointment_id}@clinic-notify"


def appointment_invitation(
    *,
    appointment_id: str,
    sequence: int,
    starts_at: datetime,
    ends_at: datetime,
    summary: str,
    location: str,
    organizer_name: str,
    organizer_email: str,
    cancelled: bool,
    stamp: datetime,
) -> Attachment:
    return invitation(
        [CalendarEntry(appointment_id, sequence, starts_at, ends_at)],
        summary=summary,
        location=location,
        organizer_name=organizer_name,
        organizer_email=organizer_email,
        cancelled=cancelled,
        stamp=stamp,
    )


def invitation(
    entries: Sequence[CalendarEntry],
    *,
    summary: str,
    location: str,
    organizer_name: str,
    organizer_email: str,
    cancelled: bool,
    stamp: datetime,
    filename: str = "appointment.ics",
) -> Attachment:
    method = "CANCEL" if cancelled else "REQUEST"
    calendar = Calendar()
    calendar.add("prodid", "-//clinic-notify//appointments//EN")
    calendar.add("version", "2.0")
    calendar.add("method", method)
    for entry in entries:
        event = Event()
        # One UID per appointment and a growing SEQUENCE: calendars update the same entry on change.
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
    return Attachment(
        filename=filename,
        content=calendar.to_ical(),
        mime_type=f"text/calendar; method={method}",
    )
