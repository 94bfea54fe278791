"""How much of a patient's reply the service reads, keeps and passes on.

A reply is bounded before it is parsed: a text by Twilio's own limit on an inbound message body,
a note on the web page by what a patient writes to their therapist. Events on Kafka are read by
integrators, not clinicians: they carry a short excerpt of the reply, never the whole text (staff
read it in full in the clinic's records and in the email to the on-call clinician).
"""
from __future__ import annotations

MAX_SMS_CHARS = 1600  # Twilio concatenates at most 1,600 characters into one inbound message
MAX_NOTE_CHARS = 2000
EVENT_EXCERPT_CHARS = 160  # one SMS segment


def event_excerpt(text: str | None) -> str | None:
    """The start of a reply, as events carry it; an ellipsis says that more is on record."""
    if text is None or len(text) <= EVENT_EXCERPT_CHARS:
        return text
    return text[: EVENT_EXCERPT_CHARS - 1] + "\u2026"
