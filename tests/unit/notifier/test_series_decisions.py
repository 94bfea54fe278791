"""A treatment plan is one conversation: one confirmation for the plan, guidance and reminders per session."""
from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from services.notifier.domain.decisions import decide
from services.notifier.domain.state import AppointmentState
from shared.clinic_config import load_clinic_config
from shared.events.appointment import AppointmentBooked, AppointmentSeries, SeriesSession
from shared.ledger.model import DeliveryIntent
from tests.support.events import booked, cancelled

CLINIC = load_clinic_config(Path(__file__).resolve().parents[3] / "deploy" / "clinic.yaml")
TORONTO = ZoneInfo("America/Toronto")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=TORONTO).astimezone(UTC)
FIRST = datetime(2026, 11, 30, 17, 30, tzinfo=TORONTO)


def plan(sessions: int = 6) -> list[AppointmentBooked]:
    """The bookings of a weekly plan, each carrying the whole plan, as the booking API publishes them."""
    ids = [f"plan-7.{n}" for n in range(1, sessions + 1)]
    starts = [FIRST + timedelta(weeks=n) for n in range(sessions)]
    listed = tuple(SeriesSession(appointment_id=i, session_number=n, starts_at=s)
                   for n, (i, s) in enumerate(zip(ids, starts, strict=True), start=1))
    return [
        booked(i, s).model_copy(update={"series": AppointmentSeries(
            series_id="plan-7", session_number=n, session_count=sessions, sessions=listed)})
        for n, (i, s) in enumerate(zip(ids, starts, strict=True), start=1)
    ]


def recorded(events: list[AppointmentBooked]) -> dict[tuple[str, str, str, int], DeliveryIntent]:
    """What the delivery ledger keeps: the first intent per (appointment, step, channel, version)."""
    ledger: dict[tuple[str, str, str, int], DeliveryIntent] = {}
    for event in events:
        for intent in decide(event, None, {}, CLINIC, NOW).intents:
            key = (intent.appointment_id, intent.step, intent.channel, intent.appointment_version)
            ledger.setdefault(key, intent)
    return ledger


def test_a_plan_is_confirmed_once_by_email_and_once_by_sms_whatever_order_its_bookings_arrive_in() -> None:
    bookings = plan(4)
    outcomes = []
    for order in itertools.permutations(bookings):
        confirmations = [i for i in recorded(list(order)).values() if i.template.endswith("confirmation")]
        assert sorted((i.appointment_id, i.channel, i.template) for i in confirmations) == [
            ("series:plan-7", "email", "series_confirmation"), ("series:plan-7", "sms", "series_confirmation")
        ]
        outcomes.append([(i.channel, i.context, i.expires_at) for i in confirmations])
    # The same message whichever session's booking recorded it.
    assert all(outcome == outcomes[0] for outcome in outcomes)
    [(_, context, expires_at), *_] = outcomes[0]
    assert [s["appointment_id"] for s in context["series"]["sessions"]] == [b.appointment_id for b in bookings]
    assert context["appointment"]["starts_at"] == FIRST.isoformat()
    assert expires_at == bookings[-1].appointment.starts_at


def test_each_session_keeps_its_own_guidance_and_reminders_and_no_single_confirmation() -> None:
    ledger = recorded(plan(6))
    per_session = {(a, step, channel) for a, step, channel, _ in ledger if not a.startswith("series:")}
    assert per_session == {
        (f"plan-7.{n}", step, channel)
        for n in range(1, 7)
        for step, channel in (("guidance_48h", "email"), ("reminder_24h", "sms"), ("reminder_2h", "sms"))
    }
    reminders = sorted(i.due_at for i in ledger.values() if i.step == "reminder_2h")
    assert [r.astimezone(TORONTO).hour for r in reminders] == [15] * 6


def test_a_cancelled_session_gets_its_own_notice_and_only_its_reminders_stop() -> None:
    bookings = plan(6)
    third = bookings[2]
    state = AppointmentState(third.appointment_id, 1, "booked", third.model_dump_json())
    cancel = cancelled(third, sequence=2).model_copy(update={"series": third.series})

    decision = decide(cancel, state, {}, CLINIC, NOW)

    assert decision.cancel_pending_because == "cancelled"
    assert {(i.appointment_id, i.step, i.channel) for i in decision.intents} == {
        ("plan-7.3", "cancellation_notice", "email"), ("plan-7.3", "cancellation_notice", "sms")
    }
    assert {i.context["appointment"]["sequence"] for i in decision.intents} == {2}


def test_a_plan_booked_after_its_last_session_started_sends_no_confirmation() -> None:
    late = NOW + timedelta(weeks=10)
    decision = decide(plan(2)[0], None, {}, CLINIC, late)
    assert not [i for i in decision.intents if i.step == "series_confirmation"]
    assert {(s.step, s.reason) for s in decision.skipped} >= {("series_confirmation", "appointment_started")}
