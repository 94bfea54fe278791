"""What the notifier does with one appointment event: pure rules, no I/O.

- A booking is confirmed on every channel the patient can be reached on, and its pre-session
  schedule (guidance, reminders) is planned.
- A reschedule sends a notice and re-plans the schedule at the new time; steps already sent are
  only sent again when the schedule says the new time makes them meaningful.
- A cancellation sends a notice and cancels everything pending; a no-show or a completed visit
  cancels what is pending.
- A notice (confirmation, reschedule or cancellation notice) is useful until the appointment's start
  (for a cancellation, the start that was cancelled): it expires then, and an event applied after
  that start (a long lag, a replay) sends none. SMS notices wait out quiet hours like reminders;
  email ones only when the clinic holds email too. A notice that quiet hours would hold until
  after its expiry goes at once: a patient must hear of a change before the visit.
- A session of a treatment plan (an event with `series`) is not confirmed on its own: its booking
  asks for one confirmation of the whole plan, recorded under the plan's id (`series:<id>`,
  version 1), so whichever session's booking arrives first records it and the others find it
  there (the ledger's unique key). Each session keeps its own guidance, reminders and notices.
- An event whose sequence is not newer than the last applied one changes nothing, and nothing
  reopens an appointment that was cancelled, missed or completed.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.notifier.domain.state import AppointmentState, AppointmentVersion
from shared.clinic_config import ClinicConfig
from shared.delivery.context import appointment_context
from shared.delivery.fallback import fallback_address
from shared.delivery.intents import intents_for
from shared.delivery.recipients import reachable_channels
from shared.delivery.series import SERIES_CONFIRMATION, series_confirmation_context, series_ledger_id
from shared.events.appointment import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentCompleted,
    AppointmentEvent,
    AppointmentNoShow,
    AppointmentRescheduled,
)
from shared.ledger.model import DeliveryIntent
from shared.scheduling.memo import Planner
from shared.scheduling.plan import SkippedStep, plan_schedule
from shared.scheduling.steps import Schedule, ScheduleStep

CLOSED_STATUSES = frozenset({"cancelled", "no_show", "completed"})
NOTICE_FOR = {
    "AppointmentBooked": "confirmation",
    "AppointmentRescheduled": "reschedule_notice",
    "AppointmentCancelled": "cancellation_notice",
}
STATUS_AFTER = {
    "AppointmentBooked": "booked",
    "AppointmentRescheduled": "booked",
    "AppointmentCancelled": "cancelled",
    "AppointmentNoShow": "no_show",
    "AppointmentCompleted": "completed",
}


@dataclass(frozen=True)
class EventDecision:
    ignored_because: str | None = None
    new_state: AppointmentState | None = None
    cancel_pending_because: str | None = None
    intents: tuple[DeliveryIntent, ...] = ()
    skipped: tuple[SkippedStep, ...] = ()

    @property
    def applied(self) -> bool:
        return self.ignored_because is None


def decide(
    event: AppointmentEvent,
    current: AppointmentVersion | None,
    already_sent: Mapping[str, datetime],
    clinic: ClinicConfig,
    now: datetime,
    *,
    plan_of: Planner = plan_schedule,
) -> EventDecision:
    """`already_sent` maps each step of this appointment already sent to when it was sent; `plan_of` plans
    the schedules, the pre-session one and the notices held in quiet hours (a `PlanMemo`'s, to plan the same
    appointment time once for many events)."""
    if current is not None:
        if event.sequence <= current.last_sequence:
            return EventDecision(ignored_because="not_newer_than_applied_sequence")
        if current.status in CLOSED_STATUSES:
            return EventDecision(ignored_because=f"appointment_already_{current.status}")

    new_state = AppointmentState(
        appointment_id=event.appointment_id,
        last_sequence=event.sequence,
        status=STATUS_AFTER[event.event_type],
        event=event.model_dump_json(),
    )
    channels = reachable_channels(event.patient)
    # One context for every message of the event (the ledger stores it with each); none without a channel.
    context = appointment_context(event) if channels else {}
    notices, stale_notices = _notices(event, channels, context, clinic, now, plan_of)
    if isinstance(event, (AppointmentCancelled, AppointmentNoShow, AppointmentCompleted)):
        return EventDecision(
            new_state=new_state, cancel_pending_because=new_state.status, intents=notices, skipped=stale_notices
        )

    assert isinstance(event, (AppointmentBooked, AppointmentRescheduled))
    scheduled, skipped = _pre_session_schedule(event, channels, context, already_sent, clinic, now, plan_of)
    return EventDecision(
        new_state=new_state,
        cancel_pending_because="rescheduled" if current is not None else None,
        intents=notices + scheduled,
        skipped=stale_notices + skipped,
    )


def _notices(
    event: AppointmentEvent, channels: Mapping[str, str], context: dict[str, Any], clinic: ClinicConfig,
    now: datetime, plan_of: Planner,
) -> tuple[tuple[DeliveryIntent, ...], tuple[SkippedStep, ...]]:
    template = NOTICE_FOR.get(event.event_type)
    if template is None:
        return (), ()
    if isinstance(event, AppointmentBooked) and event.series is not None:
        return _series_confirmation(event, channels, clinic, now, plan_of)
    expires_at = event.appointment.starts_at
    intents: list[DeliveryIntent] = []
    skipped: list[SkippedStep] = []
    for channel, address in channels.items():
        due_at = _notice_due_at(template, channel, event, clinic, now, plan_of)
        if due_at is None:
            skipped.append(SkippedStep(step=template, channel=channel, reason="appointment_started"))
            continue
        intents.append(
            DeliveryIntent(
                appointment_id=event.appointment_id,
                step=template,
                channel=channel,
                appointment_version=event.sequence,
                template=template,
                recipient=address,
                locale=event.patient.locale,
                due_at=due_at,
                context=context,
                expires_at=expires_at,
                fallback_recipient=fallback_address(channels, channel),
            )
        )
    return tuple(intents), tuple(skipped)


def _series_confirmation(
    event: AppointmentBooked, channels: Mapping[str, str], clinic: ClinicConfig, now: datetime, plan_of: Planner,
) -> tuple[tuple[DeliveryIntent, ...], tuple[SkippedStep, ...]]:
    """One confirmation of the whole plan, the same whichever of its sessions' bookings asks for it;
    useful until the plan's last session starts."""
    assert event.series is not None
    standing = [session.starts_at for session in event.series.sessions if not session.cancelled]
    if not standing:
        return (), ()
    expires_at = max(standing)
    context = series_confirmation_context(event)
    intents: list[DeliveryIntent] = []
    skipped: list[SkippedStep] = []
    for channel, address in channels.items():
        due_at = _notice_due_at(SERIES_CONFIRMATION, channel, event, clinic, now, plan_of, deadline=expires_at)
        if due_at is None:
            skipped.append(SkippedStep(step=SERIES_CONFIRMATION, channel=channel, reason="appointment_started"))
            continue
        intents.append(
            DeliveryIntent(
                appointment_id=series_ledger_id(event.series.series_id),
                step=SERIES_CONFIRMATION,
                channel=channel,
                appointment_version=1,
                template=SERIES_CONFIRMATION,
                recipient=address,
                locale=event.patient.locale,
                due_at=due_at,
                context=context,
                expires_at=expires_at,
                fallback_recipient=fallback_address(channels, channel),
            )
        )
    return tuple(intents), tuple(skipped)


def _notice_due_at(
    template: str,
    channel: str,
    event: AppointmentEvent,
    clinic: ClinicConfig,
    now: datetime,
    plan_of: Planner,
    deadline: datetime | None = None,
) -> datetime | None:
    """Now, or the end of quiet hours when the notice is held; None once the appointment started."""
    held = channel == "sms" or clinic.hold_email_in_quiet_hours
    deadline = deadline or event.appointment.starts_at
    zone = event.patient.zone
    if now < deadline and not (held and clinic.quiet_hours.contains(now.astimezone(zone).time())):
        return now.astimezone(UTC)  # what the plan below gives outside quiet hours, without planning
    plan = plan_of(_notice_schedule(template, channel, held), anchor=now, time_zone=zone,
                         quiet_hours=clinic.quiet_hours, now=now, deadline=deadline)
    if plan.planned:
        return plan.planned[0].due_at
    if plan.skipped[0].reason == "quiet_hours_until_after_start":
        return now
    return None


@functools.lru_cache(maxsize=64)
def _notice_schedule(template: str, channel: str, held: bool) -> Schedule:
    """A notice as a schedule of one step, due at once: the same few serve every event."""
    return Schedule(steps=[ScheduleStep(name=template, template=template, channel=channel,
                                        offset=timedelta(0), send_if_late=True, hold_in_quiet_hours=held)])


def _pre_session_schedule(
    event: AppointmentBooked | AppointmentRescheduled,
    channels: Mapping[str, str],
    context: dict[str, Any],
    already_sent: Mapping[str, datetime],
    clinic: ClinicConfig,
    now: datetime,
    plan_of: Planner,
) -> tuple[tuple[DeliveryIntent, ...], tuple[SkippedStep, ...]]:
    schedule = clinic.pre_session_schedule(event.appointment.type.value)
    if schedule is None:
        return (), ()
    starts_at = event.appointment.starts_at
    plan = plan_of(
        schedule,
        anchor=starts_at,
        time_zone=event.patient.zone,
        quiet_hours=clinic.quiet_hours,
        now=now,
        deadline=starts_at,
        already_sent=already_sent,
        reachable=channels,
    )
    return intents_for(event, plan.planned, channels, context, expires_at=starts_at), plan.skipped
