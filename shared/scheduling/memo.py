"""Plans made once for every appointment that would get the same: a clinic books in slots, so a batch of
events has many appointments at each time, and planning (time zones, quiet hours) was half the cost of
deciding a booking's messages.

`PlanMemo.plan` is `plan_schedule`, remembered for the memo's life by everything the plan depends on:
the schedule, the anchor, the zone, the quiet hours, `now`, the deadline, what was already sent, and
which channels are reachable (only which: a plan names channels, not addresses). A memo is meant to
live for one batch (one `now`), so it stays as small as the batch.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from shared.scheduling.plan import SchedulePlan, plan_schedule
from shared.scheduling.steps import QuietHours, Schedule


class Planner(Protocol):
    def __call__(
        self, schedule: Schedule, *, anchor: datetime, time_zone: ZoneInfo, quiet_hours: QuietHours, now: datetime,
        deadline: datetime | None = None, already_sent: Mapping[str, datetime] = ...,
        reachable: Collection[str] | None = None,
    ) -> SchedulePlan: ...


class PlanMemo:
    def __init__(self) -> None:
        # By the schedule's identity (a schedule holds a list, so it has no hash): the schedule is kept
        # with its plan, and a plan is used only for that very schedule.
        self._plans: dict[tuple[Any, ...], tuple[Schedule, SchedulePlan]] = {}

    def plan(
        self, schedule: Schedule, *, anchor: datetime, time_zone: ZoneInfo, quiet_hours: QuietHours, now: datetime,
        deadline: datetime | None = None, already_sent: Mapping[str, datetime] | None = None,
        reachable: Collection[str] | None = None,
    ) -> SchedulePlan:
        sent = already_sent or {}
        key = (id(schedule), anchor, time_zone, quiet_hours, now, deadline, frozenset(sent.items()),
               None if reachable is None else frozenset(reachable))
        found = self._plans.get(key)
        if found is not None and found[0] is schedule:
            return found[1]
        plan = plan_schedule(schedule, anchor=anchor, time_zone=time_zone, quiet_hours=quiet_hours, now=now,
                             deadline=deadline, already_sent=sent, reachable=reachable)
        self._plans[key] = (schedule, plan)
        return plan
