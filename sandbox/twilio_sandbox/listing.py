"""GET Messages.json: Twilio's filters (To, From, DateSent, DateSent>, DateSent<) and its paging."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

from sandbox.twilio_sandbox.payloads import API_VERSION
from sandbox.twilio_sandbox.state import StoredMessage

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Query parameters that select messages; the paging ones are added to each page's URIs.
FILTER_KEYS = ("To", "From", "DateSent", "DateSent<", "DateSent>")


class BadFilter(ValueError):
    """A filter or paging value the sandbox cannot read; answered 400 with Twilio error 20001."""


@dataclass(frozen=True)
class Moment:
    """A DateSent value: a whole GMT day (YYYY-MM-DD) or an instant to the second."""

    start: datetime
    whole_day: bool

    @property
    def end(self) -> datetime:
        """The first instant after this value (the next day, or the next second)."""
        return self.start + (timedelta(days=1) if self.whole_day else timedelta(seconds=1))


def parse_moment(value: str) -> Moment:
    """YYYY-MM-DD, an ISO 8601 date-time (what twilio-python sends: 2025-01-31T14:05:00Z) or RFC 2822.

    A date-time without a zone is taken as GMT, as Twilio does; fractions of a second are dropped,
    since Twilio's dates have none.
    """
    text = value.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        if len(text) == 10:
            return Moment(datetime.combine(day, time(), UTC), whole_day=True)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError) as exc:
            raise BadFilter(f"DateSent must be YYYY-MM-DD or a date-time, not {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Moment(moment.astimezone(UTC).replace(microsecond=0), whole_day=False)


def _sent_second(message: StoredMessage) -> datetime | None:
    if message.sent_at is None:
        return None
    return message.sent_at.astimezone(UTC).replace(microsecond=0)


def select(messages: list[StoredMessage], query: Mapping[str, str]) -> list[StoredMessage]:
    """The messages matching every filter given, newest first as Twilio lists them."""
    on = parse_moment(query["DateSent"]) if query.get("DateSent") else None
    after = parse_moment(query["DateSent>"]) if query.get("DateSent>") else None
    before = parse_moment(query["DateSent<"]) if query.get("DateSent<") else None
    to, from_ = query.get("To"), query.get("From")
    chosen = []
    for message in messages:
        if to and message.resource["to"] != to:
            continue
        if from_ and message.resource["from"] != from_:
            continue
        if on or after or before:
            sent = _sent_second(message)
            if sent is None:  # not sent yet (or never): no DateSent filter matches it
                continue
            # DateSent is "on", DateSent> "on or after", DateSent< "on or before".
            if on and not on.start <= sent < on.end:
                continue
            if after and sent < after.start:
                continue
            if before and sent >= before.end:
                continue
        chosen.append(message)
    chosen.sort(key=lambda m: (m.created_at, m.sequence), reverse=True)
    return chosen


def _int_param(query: Mapping[str, str], key: str, default: int) -> int:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadFilter(f"{key} must be a whole number") from exc
    if value < 0:
        raise BadFilter(f"{key} must not be negative")
    return value


def page(account_sid: str, messages: list[StoredMessage], query: Mapping[str, str]) -> dict[str, Any]:
    """One page of Twilio's list envelope: the `messages` and the paging keys twilio-python reads."""
    page_size = min(_int_param(query, "PageSize", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE) or DEFAULT_PAGE_SIZE
    page_number = _int_param(query, "Page", 0)
    selected = select(messages, query)
    start = page_number * page_size
    token = query.get("PageToken", "")
    sids = [m.sid for m in selected]
    if token[:2] in ("PA", "PB") and token[2:] in sids:
        # Twilio's page tokens name a message: "PA" the last one of the page before (go on right
        # after it), "PB" the first one of the page after, so messages arriving meanwhile shift nothing.
        at = sids.index(token[2:])
        start = at + 1 if token.startswith("PA") else max(0, at - page_size)
    items = selected[start:start + page_size]

    base = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
    filters = {key: query[key] for key in FILTER_KEYS if query.get(key)}

    def uri(number: int, page_token: str | None = None) -> str:
        params = filters | {"PageSize": str(page_size), "Page": str(number)}
        if page_token is not None:
            params["PageToken"] = page_token
        return f"{base}?{urlencode(params)}"

    has_next = start + page_size < len(selected)
    return {
        "first_page_uri": uri(0),
        "end": start + len(items) - 1 if items else start,
        "previous_page_uri": uri(page_number - 1, "PB" + items[0].sid) if page_number > 0 and items else None,
        "messages": [m.resource for m in items],
        "uri": uri(page_number, token or None),
        "page_size": page_size,
        "start": start,
        "next_page_uri": uri(page_number + 1, "PA" + items[-1].sid) if has_next and items else None,
        "page": page_number,
    }
