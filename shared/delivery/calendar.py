"""The .ics invitation attached to confirmation, reschedule and cancellation emails."""
from __future__ import annotations

from datetime import UTC, datetime

from icalendar import Calendar, Event, vCalAddress, vText

from shared.channels.messages import Attachment


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
    method = "CANCEL" if cancelled else "REQUEST"
    calendar = Calendar()
    calendar.add("prodid", "-//clinic-notify//appointments//EN")
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = Event()
    # One UID per appointment and a growing SEQUENCE: calendars update the same entry on change.
    event.add("uid", f"{appointment_id}@clinic-notify")
    event.add("sequence", sequence)
    event.add("dtstamp", stamp.astimezone(UTC))
    event.add("dtstart", starts_at.astimezone(UTC))
    event.add("dtend", ends_at.astimezone(UTC))
    event.add("summary", summary)
    event.add("location", location)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    organizer = vCalAddress(f"mailto:{organizer_email}")
    organizer.params["cn"] = vText(organizer_name)
    event["organizer"] = organizer
    calendar.add_component(event)
    return Attachment(
        filename="appointment.ics",
        content=calendar.to_ical(),
        mime_type=f"text/calendar; method={method}",
    )
