"""A notice (confirmation, reschedule or cancellation notice) goes when the clinic's one-step plan says,
whatever the zone, the quiet hours, the clock and how soon the visit starts: the decision skips planning
only where the plan would say "now"."""
from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.notifier.domain.decisions import decide
from shared.events.appointment import AppointmentEvent
from shared.events.patient import ChannelConsent
from shared.scheduling import QuietHours, Schedule, ScheduleStep, plan_schedule
from tests.support.events import booked, cancelled, patient, rescheduled
from tests.unit.notifier.test_decisions import CLINIC
from tests.unit.scheduling.test_plan_properties import ZONES

NOTICE_SETTINGS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
clock_times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 30]))


def planned_notice(template: str, channel: str, held: bool, now: datetime, deadline: datetime, zone_name: str,
                   quiet: QuietHours) -> datetime | None:
    """The notice's due time as the plan gives it: the rule the decision follows."""
    step = ScheduleStep(name=template, template=template, channel=channel, offset=timedelta(0), send_if_late=True,
                        hold_in_quiet_hours=held)
    plan = plan_schedule(Schedule(steps=[step]), anchor=now, time_zone=patient(time_zone=zone_name).zone,
                         quiet_hours=quiet, now=now, deadline=deadline)
    if plan.planned:
        return plan.planned[0].due_at
    return now if plan.skipped[0].reason == "quiet_hours_until_after_start" else None


@NOTICE_SETTINGS
@given(
    now=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)),
    starts_in=st.timedeltas(min_value=timedelta(hours=-3), max_value=timedelta(days=3)),
    zone_name=st.sampled_from(ZONES),
    quiet_start=clock_times, quiet_end=clock_times,
    hold_email=st.booleans(),
    kind=st.sampled_from(["booked", "rescheduled", "cancelled"]),
)
def test_a_notice_is_due_when_its_plan_says(now: datetime, starts_in: timedelta, zone_name: str, quiet_start: time,
                                            quiet_end: time, hold_email: bool, kind: str) -> None:
    quiet = QuietHours(start=quiet_start, end=quiet_end)
    clinic = CLINIC.model_copy(update={"quiet_hours": quiet, "hold_email_in_quiet_hours": hold_email})
    first = booked("apt-1", now + starts_in + timedelta(hours=2),
                   who=patient(time_zone=zone_name, consent=ChannelConsent(email=True, sms=True)))
    events: dict[str, AppointmentEvent] = {
        "booked": first, "rescheduled": rescheduled(first, now + starts_in, sequence=2),
        "cancelled": cancelled(first, sequence=2),
    }
    event = events[kind]
    template = {"booked": "confirmation", "rescheduled": "reschedule_notice", "cancelled": "cancellation_notice"}[kind]
    current = None if kind == "booked" else decide(first, None, {}, clinic, now - timedelta(days=7)).new_state

    decision = decide(event, current, {}, clinic, now)

    due = {intent.channel: intent.due_at for intent in decision.intents if intent.step == template}
    for channel in ("email", "sms"):
        held = channel == "sms" or hold_email
        assert due.get(channel) == planned_notice(template, channel, held, now, event.appointment.starts_at,
                                                  zone_name, quiet)
