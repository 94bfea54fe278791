"""Whatever the zone, quiet hours, offsets, clock and reschedules, a plan keeps its promises."""
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.scheduling import QuietHours, Schedule, SchedulePlan, plan_schedule

ZONES = (
    "America/Toronto",
    "America/Vancouver",
    "America/Halifax",
    "America/St_Johns",
    "Europe/Paris",
    "Australia/Lord_Howe",  # a 30-minute DST change
    "Pacific/Apia",  # skipped 30 December 2011 entirely
)
SKIP_REASONS = {"due_time_passed", "already_sent", "quiet_hours_until_after_start", "appointment_started"}
PROPERTY_SETTINGS = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@cache
def offset_changes(zone_name: str) -> tuple[datetime, ...]:
    """The instants (to the hour) at which the zone's UTC offset changed, 2005–2037."""
    zone = ZoneInfo(zone_name)
    changes = []
    moment = datetime(2005, 1, 1, tzinfo=UTC)
    while moment.year < 2038:
        next_day = moment + timedelta(days=1)
        if moment.astimezone(zone).utcoffset() != next_day.astimezone(zone).utcoffset():
            hour = moment
            while hour.astimezone(zone).utcoffset() == moment.astimezone(zone).utcoffset():
                hour += timedelta(hours=1)
            changes.append(hour)
        moment = next_day
    return tuple(changes)


def whole_minutes(low: timedelta, high: timedelta) -> st.SearchStrategy[timedelta]:
    one_minute = timedelta(minutes=1)
    return st.integers(low // one_minute, high // one_minute).map(lambda count: count * one_minute)


DAY = timedelta(days=1)
# Boundaries where clocks change (00:00 to 03:00 in these zones) are where quiet hours go wrong.
clock_times = st.one_of(
    st.sampled_from([time(0), time(0, 30), time(1), time(1, 30), time(2), time(2, 30), time(3)]),
    st.builds(time, st.integers(0, 23), st.sampled_from([0, 0, 15, 30, 59])),
    st.times(),
)
quiet_hours = st.one_of(
    st.builds(QuietHours, start=clock_times, end=clock_times),
    clock_times.map(lambda moment: QuietHours(start=moment, end=moment)),
    st.just(QuietHours()),
)
step_settings = st.fixed_dictionaries(
    {
        "template": st.sampled_from(["pre_session_guidance", "reminder", "soreness_check_in"]),
        "channel": st.sampled_from(["email", "sms"]),
        "offset": st.one_of(
            st.integers(-10 * 24, 10 * 24).map(lambda hours: timedelta(hours=hours)),
            whole_minutes(-10 * DAY, 10 * DAY),
        ),
        "send_if_late": st.booleans(),
        "resend_on_reschedule": st.booleans(),
        "hold_in_quiet_hours": st.sampled_from([None, True, False]),
    }
)
schedules = st.lists(
    st.tuples(st.sampled_from([f"step_{n}" for n in range(8)]), step_settings),
    unique_by=lambda pair: pair[0],
    max_size=6,
).map(lambda pairs: Schedule.model_validate({"steps": [{"name": name, **rest} for name, rest in pairs]}))


@dataclass(frozen=True)
class Reschedule:
    wait: timedelta  # time passing (and messages going out) before the appointment moves
    move: timedelta


@dataclass(frozen=True)
class Scenario:
    zone: ZoneInfo
    quiet_hours: QuietHours
    schedule: Schedule
    anchor: datetime
    now: datetime
    deadline_after_anchor: timedelta | None
    reschedules: tuple[Reschedule, ...]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    zone_name = draw(st.sampled_from(ZONES))
    zone = ZoneInfo(zone_name)
    near_a_change = st.builds(
        lambda change, shift: (change + shift).astimezone(zone),
        st.sampled_from(offset_changes(zone_name)),
        whole_minutes(-4 * DAY, 4 * DAY),
    )
    any_day = st.datetimes(datetime(2005, 1, 1), datetime(2037, 12, 31), timezones=st.just(zone))
    anchor = draw(st.one_of(near_a_change, any_day))
    now = anchor + draw(st.one_of(whole_minutes(-12 * DAY, 2 * DAY), st.timedeltas(-12 * DAY, 2 * DAY)))
    deadline = draw(st.one_of(st.none(), st.just(timedelta(0)), st.timedeltas(-3 * DAY / 24, 3 * DAY / 24)))
    reschedule = st.builds(
        Reschedule, wait=st.timedeltas(timedelta(0), 5 * DAY), move=whole_minutes(-7 * DAY, 7 * DAY)
    )
    reschedules = tuple(draw(st.lists(reschedule, max_size=4)))
    return Scenario(zone, draw(quiet_hours), draw(schedules), anchor, now, deadline, reschedules)


def plan(scenario: Scenario, anchor: datetime, now: datetime, sent: Mapping[str, datetime]) -> SchedulePlan:
    deadline = None if scenario.deadline_after_anchor is None else anchor + scenario.deadline_after_anchor
    result = plan_schedule(
        scenario.schedule,
        anchor=anchor,
        time_zone=scenario.zone,
        quiet_hours=scenario.quiet_hours,
        now=now,
        deadline=deadline,
        already_sent=sent,
    )
    assert_keeps_its_promises(result, scenario, now, deadline)
    return result


def assert_keeps_its_promises(
    result: SchedulePlan, scenario: Scenario, now: datetime, deadline: datetime | None
) -> None:
    steps = {step.name: step for step in scenario.schedule.steps}
    named = [message.step for message in result.planned] + [skipped.step for skipped in result.skipped]
    assert sorted(named) == sorted(steps), "every step is planned or skipped, exactly once"
    assert all(skipped.reason in SKIP_REASONS for skipped in result.skipped)
    assert [m.due_at for m in result.planned] == sorted(m.due_at for m in result.planned)
    for message in result.planned:
        assert message.due_at.utcoffset() == timedelta(0)
        assert message.due_at >= now, "nothing is due in the past"
        assert deadline is None or message.due_at < deadline, "nothing is due once the visit has begun"
        if steps[message.step].held_in_quiet_hours:
            local = message.due_at.astimezone(scenario.zone).time()
            assert not scenario.quiet_hours.contains(local), f"held message due at {local} in quiet hours"


@PROPERTY_SETTINGS
@given(scenarios())
def test_plans_keep_their_promises_through_any_sequence_of_reschedules(scenario: Scenario) -> None:
    anchor, now = scenario.anchor, scenario.now
    sent: dict[str, datetime] = {}
    current = plan(scenario, anchor, now, sent)
    assert all(skipped.reason != "already_sent" for skipped in current.skipped)
    for reschedule in scenario.reschedules:
        now += reschedule.wait
        sent_for_this_time = {m.step: m.due_at for m in current.planned if m.due_at <= now}
        sent.update(sent_for_this_time)

        unchanged = plan(scenario, anchor, now, sent)
        repeated = {message.step for message in unchanged.planned} & sent_for_this_time.keys()
        assert not repeated, "replanning an unmoved appointment repeats nothing"

        anchor += reschedule.move
        current = plan(scenario, anchor, now, sent)



@PROPERTY_SETTINGS
@given(scenarios(), st.sets(st.sampled_from(["email", "sms"])))
def test_a_step_the_patient_cannot_get_is_skipped_and_the_others_planned_as_ever(
    scenario: Scenario, reachable: set[str]
) -> None:
    deadline = None if scenario.deadline_after_anchor is None else scenario.anchor + scenario.deadline_after_anchor

    def planned(reachable: set[str] | None) -> SchedulePlan:
        return plan_schedule(scenario.schedule, anchor=scenario.anchor, time_zone=scenario.zone,
                             quiet_hours=scenario.quiet_hours, now=scenario.now, deadline=deadline, reachable=reachable)

    everything, result = planned(None), planned(reachable)
    assert result.planned == tuple(m for m in everything.planned if m.channel in reachable)
    assert {(s.step, s.reason) for s in result.skipped} == {
        *((s.step, s.reason) for s in everything.skipped if s.channel in reachable),
        *((step.name, "no_consent_or_address") for step in scenario.schedule.steps if step.channel not in reachable),
    }
