"""The clinic-editable schedules: which messages an appointment type gets, on which channel, when."""
from __future__ import annotations

import re
from collections import Counter
from datetime import time, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, field_validator

_OFFSET = re.compile(
    r"(?P<sign>[+-])?(?:(?P<days>\d+)d)?(?:(?P<hours>\d+)h)?(?:(?P<minutes>\d+)m)?(?:(?P<seconds>\d+)s)?"
)
_SLUG = re.compile(r"[a-z][a-z0-9_]*")
_OFFSET_EXAMPLES = "like '-48h', '-2h', '24h', '90m', '-1d' or '-1d2h' (days, hours, minutes, seconds in that order)"


def parse_offset(value: object) -> timedelta:
    """Read an offset such as "-48h" or "-1d2h"; negative means before the anchor."""
    if isinstance(value, timedelta):
        offset = value
    elif isinstance(value, str):
        match = _OFFSET.fullmatch(value.strip())
        if match is None or not (match["days"] or match["hours"] or match["minutes"] or match["seconds"]):
            raise ValueError(f"offset {value!r} is not understood; write it {_OFFSET_EXAMPLES}")
        magnitude = timedelta(
            days=int(match["days"] or 0),
            hours=int(match["hours"] or 0),
            minutes=int(match["minutes"] or 0),
            seconds=int(match["seconds"] or 0),
        )
        offset = -magnitude if match["sign"] == "-" else magnitude
    else:
        raise ValueError(f"offset {value!r} must be text {_OFFSET_EXAMPLES}")
    if offset % timedelta(seconds=1):
        raise ValueError(f"offset {value!r} must be a whole number of seconds")
    return offset


def format_offset(offset: timedelta) -> str:
    """Write an offset back in the clinic's notation ("-48h", "1h30m", "45s")."""
    sign = "-" if offset < timedelta(0) else ""
    seconds = abs(offset) // timedelta(seconds=1)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{seconds}s" if seconds else "")
    return sign + (text or "0m")


Offset = Annotated[
    timedelta,
    BeforeValidator(parse_offset),
    PlainSerializer(format_offset, return_type=str, when_used="json"),
]


class ScheduleStep(BaseModel):
    """One message of a schedule, due at `offset` from the anchor (the visit's start or its end)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    template: str
    channel: Literal["email", "sms"]
    offset: Offset
    send_if_late: bool = False
    resend_on_reschedule: bool = False
    hold_in_quiet_hours: bool | None = None

    @field_validator("name", "template")
    @classmethod
    def _is_slug(cls, value: str) -> str:
        if not _SLUG.fullmatch(value):
            raise ValueError(
                f"{value!r} must be lower-case letters, digits and underscores, starting with a letter "
                "(e.g. 'guidance_48h')"
            )
        return value

    @property
    def held_in_quiet_hours(self) -> bool:
        # A text buzzes a phone at night; an email waits quietly in the inbox.
        if self.hold_in_quiet_hours is None:
            return self.channel == "sms"
        return self.hold_in_quiet_hours


class QuietHours(BaseModel):
    """Local wall-clock hours in which held messages wait. The window may wrap midnight;
    start == end means there are no quiet hours."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time = time(21, 0)
    end: time = time(8, 0)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _is_clock_time(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted 22:00 as the number 1320, which pydantic would take as 00:22.
        if isinstance(value, (int, float)):
            raise ValueError(f"quiet hours {value!r} must be a time like \"22:00\" (quote it in YAML)")
        return value

    @field_validator("start", "end")
    @classmethod
    def _is_wall_clock(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError(f"quiet hours {value} must be local wall-clock time, without a time zone")
        return value

    def contains(self, local_time: time) -> bool:
        moment = local_time.replace(tzinfo=None)
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


class Schedule(BaseModel):
    """The messages one appointment type gets, each step named once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: list[ScheduleStep]

    @field_validator("steps")
    @classmethod
    def _names_are_unique(cls, steps: list[ScheduleStep]) -> list[ScheduleStep]:
        repeated = sorted(name for name, count in Counter(step.name for step in steps).items() if count > 1)
        if repeated:
            raise ValueError(f"step names must be unique within a schedule; repeated: {', '.join(repeated)}")
        return steps


SchedulesByAppointmentType = dict[str, Schedule]
"""Keyed by appointment type, e.g. "dry_needling", "physiotherapy", "massage_therapy"."""
