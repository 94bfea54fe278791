"""When each message of an appointment's schedule is due. Pure: no I/O, `now` is given.

- Nominal time: the anchor in the patient's local wall-clock time, plus the step's offset, so
  "24 h before a 10:00 visit" is 10:00 the day before even across a DST change. A local time
  skipped by spring-forward moves to the first instant after the gap; a repeated one (fall-back)
  takes its first occurrence.
- Late: a nominal time before `now` is due at `now` if the step has send_if_late and the deadline
  has not come; otherwise the step is skipped "due_time_passed".
- Deadline: nothing is due at or after it ("appointment_started").
- Quiet hours, for held steps: a due time inside the window moves to the window's end; if that is
  at or after the deadline, to one minute before the window began, if that is not before `now`;
  otherwise the step is skipped "quiet_hours_until_after_start". A held message is never due
  inside the window.
- Already sent: skipped "already_sent", unless the step has resend_on_reschedule and both its new
  nominal time and its new due time are after the earlier send. Checking the nominal time too keeps
  a replan of an unmoved appointment from repeating a message that went out late or ahead of
  quiet hours.
- Unreachable: when `reachable` channels are given, a step on any other channel is skipped
  "no_consent_or_address" without being planned (the patient cannot get it, whenever it would be due).
- Each step appears once, planned or skipped. Planned messages are sorted by due time (aware,
  UTC); skipped steps keep the schedule's order.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo

from shared.scheduling.steps import QuietHours, Schedule, ScheduleStep

SkipReason = Literal[
    "due_time_passed", "already_sent", "quiet_hours_until_after_start", "appointment_started", "no_consent_or_address"
]


@dataclass(frozen=True)
class PlannedMessage:
    step: str
    template: str
    channel: str
    due_at: datetime  # aware, UTC


@dataclass(frozen=True)
class SkippedStep:
    step: str
    channel: str
    reason: SkipReason


@dataclass(frozen=True)
class SchedulePlan:
    planned: tuple[PlannedMessage, ...]
    skipped: tuple[SkippedStep, ...]


_NOTHING_SENT: Mapping[str, datetime] = MappingProxyType({})


def plan_schedule(
    schedule: Schedule,
    *,
    anchor: datetime,
    time_zone: ZoneInfo,
    quiet_hours: QuietHours,
    now: datetime,
    deadline: datetime | None = None,
    already_sent: Mapping[str, datetime] = _NOTHING_SENT,
    reachable: Collection[str] | None = None,
) -> SchedulePlan:
    """Plan every step of `schedule` around `anchor` (a visit's start, or its completion for
    aftercare); `deadline` is the moment after which a message is pointless (the visit's start)."""
    _require_aware("anchor", anchor)
    _require_aware("now", now)
    if deadline is not None:
        _require_aware("deadline", deadline)
    for step_name, earlier in already_sent.items():
        _require_aware(f"already_sent[{step_name!r}]", earlier)

    situation = _Situation(time_zone, quiet_hours, now.astimezone(UTC), deadline)
    planned: list[PlannedMessage] = []
    skipped: list[SkippedStep] = []
    local_anchor = _local_wall_clock(anchor, time_zone)
    for step in schedule.steps:
        if reachable is not None and step.channel not in reachable:
            skipped.append(SkippedStep(step.name, step.channel, "no_consent_or_address"))
            continue
        nominal = _instants_at(local_anchor + step.offset, time_zone)[0]
        outcome = _due_time(step, nominal, situation)
        sent_at = already_sent.get(step.name)
        if sent_at is not None and not _earlier_send_is_stale(step, sent_at, nominal, outcome):
            outcome = "already_sent"
        if isinstance(outcome, datetime):
            planned.append(PlannedMessage(step.name, step.template, step.channel, outcome))
        else:
            skipped.append(SkippedStep(step.name, step.channel, outcome))
    planned.sort(key=lambda message: (message.due_at, message.step))
    return SchedulePlan(tuple(planned), tuple(skipped))


@dataclass(frozen=True)
class _Situation:
    time_zone: ZoneInfo
    quiet_hours: QuietHours
    now: datetime
    deadline: datetime | None

    def has_started(self, moment: datetime) -> bool:
        return self.deadline is not None and moment >= self.deadline

    def is_quiet(self, moment: datetime) -> bool:
        return self.quiet_hours.contains(moment.astimezone(self.time_zone).time())


def _due_time(step: ScheduleStep, nominal: datetime, situation: _Situation) -> datetime | SkipReason:
    due = nominal
    if due < situation.now:
        if not step.send_if_late or situation.has_started(situation.now):
            return "due_time_passed"
        due = situation.now
    if situation.has_started(due):
        return "appointment_started"
    if step.held_in_quiet_hours and situation.is_quiet(due):
        return _outside_quiet_hours(due, situation)
    return due


def _outside_quiet_hours(due: datetime, situation: _Situation) -> datetime | SkipReason:
    later = _end_of_quiet_window(due, situation)
    if later is not None and not situation.has_started(later):
        return later
    earlier = _before_quiet_window(due, situation)
    if earlier is not None and earlier >= situation.now:
        return earlier
    return "quiet_hours_until_after_start"


def _end_of_quiet_window(due: datetime, situation: _Situation) -> datetime | None:
    end = situation.quiet_hours.end
    local = due.astimezone(situation.time_zone)
    first_day = local.date() if local.time() < end else local.date() + timedelta(days=1)
    # Later days only matter when a DST gap swallows the window's end.
    for days_later in range(3):
        wall_clock = datetime.combine(first_day + timedelta(days=days_later), end)
        for candidate in _instants_at(wall_clock, situation.time_zone):
            if candidate > due and not situation.is_quiet(candidate):
                return candidate
    return None


def _before_quiet_window(due: datetime, situation: _Situation) -> datetime | None:
    start = situation.quiet_hours.start
    local = due.astimezone(situation.time_zone)
    day = local.date() if local.time() >= start else local.date() - timedelta(days=1)
    last_free_minute = datetime.combine(day, start) - timedelta(minutes=1)
    for candidate in reversed(_instants_at(last_free_minute, situation.time_zone)):
        if candidate < due and not situation.is_quiet(candidate):
            return candidate
    return None


def _local_wall_clock(moment: datetime, time_zone: ZoneInfo) -> datetime:
    return moment.astimezone(time_zone).replace(tzinfo=None, fold=0)


@functools.lru_cache(maxsize=4096)
def _instants_at(wall_clock: datetime, time_zone: ZoneInfo) -> tuple[datetime, ...]:
    """The UTC instants a local wall clock shows: one; two, in order, in a fall-back hour;
    for a time inside a spring-forward gap, the first instant after the gap.

    Remembered: the same wall clocks come back plan after plan (the end of quiet hours on a given
    day, a slot's reminder times), and each reading costs several conversions. The answer depends on
    the wall clock and the zone only (not on the wall clock's fold: both folds are read here)."""
    earlier, later = wall_clock.replace(tzinfo=time_zone, fold=0), wall_clock.replace(tzinfo=time_zone, fold=1)
    offset = earlier.utcoffset()
    if offset is not None and offset == later.utcoffset():
        # Neither in a gap nor repeated (both readings agree): the one instant, without converting twice.
        return ((wall_clock - offset).replace(tzinfo=UTC),)
    first, second = earlier.astimezone(UTC), later.astimezone(UTC)
    if _local_wall_clock(first, time_zone) != wall_clock:
        # In a gap, fold=0 reads the wall clock with the offset before the change and fold=1
        # with the offset after it, which puts the change between `second` and `first`.
        return (_change_of_offset(second, first, time_zone),)
    if second != first:
        return (first, second)
    return (first,)


def _change_of_offset(before: datetime, after: datetime, time_zone: ZoneInfo) -> datetime:
    # zoneinfo exposes no transition times, so bisect to the second (tz transitions fall on whole
    # seconds); a DST gap is at most a few hours wide.
    new_offset = after.astimezone(time_zone).utcoffset()
    low, high = math.floor(before.timestamp()), math.ceil(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, UTC).astimezone(time_zone).utcoffset() == new_offset:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _earlier_send_is_stale(
    step: ScheduleStep, sent_at: datetime, nominal: datetime, outcome: datetime | SkipReason
) -> bool:
    return (
        step.resend_on_reschedule
        and isinstance(outcome, datetime)
        and nominal > sent_at
        and outcome > sent_at
    )


def _require_aware(name: str, moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment!r}")
