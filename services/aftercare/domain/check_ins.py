"""What a completed visit sets in motion: aftercare advice now, soreness check-ins later. Pure.

A check-in is `scheduled` until it is answered, closed because an earlier answer ended the
check-ins of its visit, or closed as `no_reply` once the last round's reply window has passed.
"""
from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.clinic_config import ClinicConfig
from shared.delivery.context import appointment_context, with_extra
from shared.delivery.intents import intents_for
from shared.delivery.recipients import reachable_channels
from shared.events.appointment import AppointmentCompleted
from shared.ledger.model import DeliveryIntent
from shared.scheduling.memo import Planner
from shared.scheduling.plan import PlannedMessage, SkippedStep, plan_schedule
from shared.scheduling.steps import Schedule, ScheduleStep

_CHECK_IN_NAMESPACE = uuid.UUID("5b1f0c1e-8d3a-4a52-9a7e-6f1c2d3b4a50")


class CheckInStatus(StrEnum):
    SCHEDULED = "scheduled"
    ANSWERED = "answered"
    CLOSED = "closed"  # an earlier answer ended the check-ins of the visit
    NO_REPLY = "no_reply"


@dataclass(frozen=True)
class CheckIn:
    """A check-in on record, as the rules read it."""

    id: str
    appointment_id: str
    round: int
    rounds: int
    phone: str | None
    email: str | None
    locale: str
    context: dict[str, Any]
    due_at: datetime
    status: CheckInStatus
    score: int | None
    unreadable_replies: int

    @property
    def is_open(self) -> bool:
        return self.status is CheckInStatus.SCHEDULED


@dataclass(frozen=True)
class CheckInPlan:
    id: str
    round: int
    rounds: int
    due_at: datetime
    channels: tuple[str, ...]


@dataclass(frozen=True)
class AftercarePlan:
    check_ins: tuple[CheckInPlan, ...]
    intents: tuple[DeliveryIntent, ...]
    skipped: tuple[SkippedStep, ...]


def check_in_id(appointment_id: str, round_number: int) -> str:
    """The same visit and round always give the same id, so a replayed event plans nothing new."""
    return str(uuid.uuid5(_CHECK_IN_NAMESPACE, f"{appointment_id}:{round_number}"))


def plan_aftercare(event: AppointmentCompleted, clinic: ClinicConfig, now: datetime, *,
                   plan_of: Planner = plan_schedule) -> AftercarePlan:
    """`plan_of` plans the schedules (a `PlanMemo`'s, to plan once for the visits that end together)."""
    channels = reachable_channels(event.patient)
    visit = appointment_context(event)
    # Sent as the visit ends, except that a text waits out the night like any other.
    advice_plan = plan_of(
        _advice_schedule(tuple(channels)),
        anchor=now, time_zone=event.patient.zone, quiet_hours=clinic.quiet_hours, now=now,
    )
    advice = intents_for(
        event,
        [replace(message, step="aftercare_advice") for message in advice_plan.planned],
        channels,
        with_extra(visit, needled_near_chest=event.needled_near_chest),
    )
    schedule = clinic.check_in_schedule(event.appointment.type.value)
    if schedule is None:
        return AftercarePlan((), advice, ())
    plan = plan_of(
        schedule,
        anchor=event.completed_at,
        time_zone=event.patient.zone,
        quiet_hours=clinic.quiet_hours,
        now=now,
        reachable=channels,
    )
    rounds = _rounds(schedule_offsets={step.name: step.offset for step in schedule.steps}, planned=list(plan.planned))
    check_ins: list[CheckInPlan] = []
    intents = list(advice)
    for number, messages in enumerate(rounds, start=1):
        identifier = check_in_id(event.appointment_id, number)
        check_ins.append(
            CheckInPlan(identifier, number, len(rounds), min(m.due_at for m in messages),
                        tuple(sorted({m.channel for m in messages})))
        )
        context = with_extra(visit, check_in_id=identifier, round=number, rounds=len(rounds))
        intents.extend(intents_for(event, messages, channels, context))
    return AftercarePlan(tuple(check_ins), tuple(intents), plan.skipped)


@functools.lru_cache(maxsize=16)
def _advice_schedule(channels: tuple[str, ...]) -> Schedule:
    """The advice on each channel, due as the visit ends: the same few serve every visit."""
    return Schedule(steps=[
        ScheduleStep.model_validate({"name": f"aftercare_advice_{channel}", "template": "aftercare_advice",
                                     "channel": channel, "offset": timedelta(0), "send_if_late": True})
        for channel in channels
    ])


def _rounds(schedule_offsets: dict[str, timedelta], planned: list[PlannedMessage]) -> list[list[PlannedMessage]]:
    """Steps at the same offset from the visit are one check-in sent on several channels."""
    by_offset: dict[timedelta, list[PlannedMessage]] = {}
    for message in planned:
        by_offset.setdefault(schedule_offsets[message.step], []).append(message)
    return [by_offset[offset] for offset in sorted(by_offset)]
