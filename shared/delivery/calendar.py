"""The .ics invitation attached to confirmation, reschedule and cancellation emails.

One VEVENT per appointment, its UID derived from the appointment id alone: a plan's confirmation
holds one VEVENT per session, and a later notice about one session (a REQUEST with a higher
SEQUENCE, or a CANCEL) replaces that session's entry and no other.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from icalendar import Event, vCalAddress, vText

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
    """The calendar file, as icalendar writes it: the lines shared by every entry (the summary, the
    location, the organizer, the status: the same few for a clinic) are written by icalendar once; the
    times, the sequence and a plain UID are written here (icalendar building every line of every
    invitation cost more than the rest of the email)."""
    method = "CANCEL" if cancelled else "REQUEST"
    summary_lines, shared_lines = _shared_lines(summary, location, organizer_name, organizer_email, cancelled)
    stamp_line = f"DTSTAMP:{_utc(stamp)}\r\n"
    parts = [f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:{_PRODID}\r\nMETHOD:{method}\r\n"]
    for entry in entries:
        # One UID per appointment and a growing SEQUENCE: calendars update the same entry on change.
        parts += ["BEGIN:VEVENT\r\n", summary_lines, f"DTSTART:{_utc(entry.starts_at)}\r\n",
                  f"DTEND:{_utc(entry.ends_at)}\r\n", stamp_line, _uid_line(calendar_uid(entry.appointment_id)),
                  f"SEQUENCE:{entry.sequence}\r\n", shared_lines, "END:VEVENT\r\n"]
    parts.append("END:VCALENDAR\r\n")
    return Attachment(
        filename=filename,
        content="".join(parts).encode(),
        mime_type=f"text/calendar; method={method}",
    )


_PRODID = "-//clinic-notify//appointments//EN"
# What icalendar writes as it is: nothing to escape, and short enough not to be folded (at 74 octets).
_PLAIN_UID = re.compile(r"[A-Za-z0-9@._:/+=-]{1,70}")


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _uid_line(uid: str) -> str:
    return f"UID:{uid}\r\n" if _PLAIN_UID.fullmatch(uid) else _lines_of(lambda event: event.add("uid", uid))


@functools.lru_cache(maxsize=256)
def _shared_lines(
    summary: str, location: str, organizer_name: str, organizer_email: str, cancelled: bool
) -> tuple[str, str]:
    """The SUMMARY line, and the LOCATION, ORGANIZER and STATUS lines, as icalendar writes them."""

    def rest(event: Event) -> None:
        event.add("location", location)
        event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
        organizer = vCalAddress(f"mailto:{organizer_email}")
        organizer.params["cn"] = vText(organizer_name)
        event["organizer"] = organizer

    return _lines_of(lambda event: event.add("summary", summary)), _lines_of(rest)


def _lines_of(fill: Callable[[Event], None]) -> str:
    """The content lines icalendar writes for the properties `fill` gives an event, folded, each ending in CRLF."""
    event = Event()
    fill(event)
    text: str = event.to_ical().decode()
    return text.removeprefix("BEGIN:VEVENT\r\n").removesuffix("END:VEVENT\r\n")
