"""Appointments that would get the same plan share one, and no appointment gets another's."""
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shared.scheduling import QuietHours, Schedule, SchedulePlan, plan_schedule
from shared.scheduling.memo import PlanMemo
from tests.unit.scheduling.test_plan import DRY_NEEDLING, TORONTO
from tests.unit.scheduling.test_plan_properties import PROPERTY_SETTINGS, Scenario, scenarios

CHANNELS = st.sets(st.sampled_from(["email", "sms"]))


@PROPERTY_SETTINGS
@given(st.lists(st.tuples(scenarios(), CHANNELS, st.booleans()), min_size=1, max_size=6))
def test_a_plan_from_the_memo_is_the_plan_made_for_that_appointment(
    appointments: list[tuple[Scenario, set[str], bool]],
) -> None:
    """Asked in any order, twice each (a batch with every appointment's events at once), the memo answers
    each appointment with what planning it alone gives, whatever the others asked before it."""
    memo = PlanMemo()
    for _ in range(2):
        for scenario, reachable, first_step_sent in appointments:
            after_anchor = scenario.deadline_after_anchor
            deadline = None if after_anchor is None else scenario.anchor + after_anchor
            steps = scenario.schedule.steps
            sent = {steps[0].name: scenario.now - timedelta(hours=1)} if first_step_sent and steps else {}
            asked: dict[str, Any] = {
                "anchor": scenario.anchor, "time_zone": scenario.zone, "quiet_hours": scenario.quiet_hours,
                "now": scenario.now, "deadline": deadline, "already_sent": sent, "reachable": reachable}
            assert memo.plan(scenario.schedule, **asked) == plan_schedule(scenario.schedule, **asked)


def test_appointments_at_one_time_differing_in_what_was_sent_or_how_to_reach_them_each_get_their_own(
) -> None:
    now = datetime(2026, 3, 2, 15, tzinfo=UTC)
    slot = now + timedelta(days=3)
    memo = PlanMemo()

    def plan(schedule: Schedule = DRY_NEEDLING, **changes: Any) -> SchedulePlan:
        asked: dict[str, Any] = {"anchor": slot, "time_zone": TORONTO, "quiet_hours": QuietHours(),
                                    "now": now, "deadline": slot, "reachable": {"email", "sms"}} | changes
        return memo.plan(schedule, **asked)

    everything = plan()
    first = everything.planned[0]
    assert plan(already_sent={first.step: now - timedelta(days=1)}) != everything
    assert plan(reachable={"email"}) != everything
    assert plan(anchor=slot + timedelta(minutes=15), deadline=slot + timedelta(minutes=15)) != everything
    assert plan(deadline=slot - timedelta(days=1)) != everything
    assert plan(now=now + timedelta(days=2, hours=12)) != everything
    same_steps = Schedule(steps=[*DRY_NEEDLING.steps[:1]])
    assert plan(same_steps) != everything
    assert plan() is everything, "the same appointment time, reached the same way, is planned once"
