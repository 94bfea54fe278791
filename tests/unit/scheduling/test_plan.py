from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.scheduling import QuietHours, Schedule, SchedulePlan, plan_schedule

TORONTO = ZoneInfo("America/Toronto")
NO_QUIET_HOURS = QuietHours(start=time(0), end=time(0))

DRY_NEEDLING = Schedule.model_validate(
    {
        "steps": [
            {"name": "guidance_48h", "template": "pre_session_guidance", "channel": "email",
             "offset": "-48h", "send_if_late": True},
            {"name": "reminder_24h", "template": "reminder", "channel": "sms",
             "offset": "-24h", "resend_on_reschedule": True},
            {"name": "reminder_2h", "template": "reminder", "channel": "sms",
             "offset": "-2h", "resend_on_reschedule": True},
        ]
    }
)
AFTERCARE = Schedule.model_validate(
    {
        "steps": [
            {"name": "check_in_24h", "template": "soreness_check_in", "channel": "sms", "offset": "24h"},
            {"name": "check_in_48h", "template": "soreness_check_in", "channel": "email", "offset": "48h"},
        ]
    }
)


def toronto(month: int, day: int, hour: int, minute: int = 0, year: int = 2025) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=TORONTO)


def before_visit(
    visit: datetime,
    *,
    now: datetime,
    schedule: Schedule = DRY_NEEDLING,
    quiet_hours: QuietHours = QuietHours(),
    already_sent: Mapping[str, datetime] | None = None,
) -> SchedulePlan:
    return plan_schedule(
        schedule, anchor=visit, time_zone=TORONTO, quiet_hours=quiet_hours, now=now,
        deadline=visit, already_sent=already_sent or {},
    )


def after_visit(
    completed: datetime, *, now: datetime, quiet_hours: QuietHours = QuietHours()
) -> SchedulePlan:
    return plan_schedule(AFTERCARE, anchor=completed, time_zone=TORONTO, quiet_hours=quiet_hours, now=now)


def due_locally(plan: SchedulePlan) -> dict[str, datetime]:
    return {message.step: message.due_at.astimezone(TORONTO) for message in plan.planned}


def skip_reasons(plan: SchedulePlan) -> dict[str, str]:
    return {skipped.step: skipped.reason for skipped in plan.skipped}


def test_a_booking_made_days_ahead_gets_guidance_and_both_reminders_at_their_times() -> None:
    plan = before_visit(toronto(6, 20, 10), now=toronto(6, 10, 12))

    assert due_locally(plan) == {
        "guidance_48h": toronto(6, 18, 10),
        "reminder_24h": toronto(6, 19, 10),
        "reminder_2h": toronto(6, 20, 8),
    }
    assert plan.skipped == ()
    assert all(message.due_at.tzinfo is UTC for message in plan.planned)
    assert [message.template for message in plan.planned] == ["pre_session_guidance", "reminder", "reminder"]


def test_a_booking_made_at_23_00_for_tomorrow_09_00_gets_its_2h_reminder_at_08_00_not_07_00() -> None:
    plan = before_visit(toronto(6, 11, 9), now=toronto(6, 10, 23))

    assert due_locally(plan) == {"guidance_48h": toronto(6, 10, 23), "reminder_2h": toronto(6, 11, 8)}
    assert skip_reasons(plan) == {"reminder_24h": "due_time_passed"}


def test_a_booking_3h_ahead_sends_guidance_at_once_and_skips_the_24h_reminder() -> None:
    plan = before_visit(toronto(6, 10, 13), now=toronto(6, 10, 10))

    assert due_locally(plan) == {"guidance_48h": toronto(6, 10, 10), "reminder_2h": toronto(6, 10, 11)}
    assert skip_reasons(plan) == {"reminder_24h": "due_time_passed"}


def test_24h_before_a_10_00_appointment_after_the_november_dst_change_is_still_10_00_local() -> None:
    sunday_after_fall_back = toronto(11, 2, 10)  # clocks went back at 02:00 that morning
    plan = before_visit(sunday_after_fall_back, now=toronto(10, 20, 9))

    assert due_locally(plan)["reminder_24h"] == toronto(11, 1, 10)
    reminder = next(message for message in plan.planned if message.step == "reminder_24h")
    assert sunday_after_fall_back.astimezone(UTC) - reminder.due_at == timedelta(hours=25)  # real hours elapsed


def test_24h_before_a_10_00_appointment_after_the_march_dst_change_is_still_10_00_local() -> None:
    monday_after_spring_forward = toronto(3, 10, 10)  # clocks went forward at 02:00 on Sunday 9 March 2025
    plan = before_visit(monday_after_spring_forward, now=toronto(3, 1, 9))

    assert due_locally(plan)["reminder_24h"] == toronto(3, 9, 10)
    assert due_locally(plan)["guidance_48h"] == toronto(3, 8, 10)
    guidance = next(message for message in plan.planned if message.step == "guidance_48h")
    assert monday_after_spring_forward.astimezone(UTC) - guidance.due_at == timedelta(hours=47)  # real hours


def test_a_local_time_skipped_by_spring_forward_moves_to_the_first_minute_after_the_gap() -> None:
    plan = after_visit(toronto(3, 8, 2, 30), now=toronto(3, 8, 3), quiet_hours=NO_QUIET_HOURS)

    assert plan.planned[0].due_at == datetime(2025, 3, 9, 7, tzinfo=UTC)  # 03:00 EDT


def test_a_local_time_repeated_by_fall_back_takes_its_first_occurrence() -> None:
    plan = after_visit(toronto(11, 1, 1, 30), now=toronto(11, 1, 3), quiet_hours=NO_QUIET_HOURS)

    assert plan.planned[0].due_at == datetime(2025, 11, 2, 5, 30, tzinfo=UTC)  # 01:30 EDT, not EST


def test_a_reschedule_to_a_later_day_resends_the_reminders_but_not_the_guidance() -> None:
    sent = {
        "guidance_48h": toronto(6, 8, 10),
        "reminder_24h": toronto(6, 9, 10),
        "reminder_2h": toronto(6, 10, 8),
    }

    plan = before_visit(toronto(6, 12, 10), now=toronto(6, 10, 8, 30), already_sent=sent)

    assert due_locally(plan) == {"reminder_24h": toronto(6, 11, 10), "reminder_2h": toronto(6, 12, 8)}
    assert skip_reasons(plan) == {"guidance_48h": "already_sent"}


def test_replanning_an_unmoved_appointment_sends_nothing_twice() -> None:
    visit = toronto(6, 11, 7, 30)
    first = before_visit(visit, now=toronto(6, 10, 23))
    sent = {message.step: message.due_at for message in first.planned}

    again = before_visit(visit, now=toronto(6, 11, 6), already_sent=sent)

    assert again.planned == ()
    assert set(skip_reasons(again).values()) <= {"already_sent", "due_time_passed"}


def test_a_reminder_sent_before_the_visit_was_moved_earlier_is_not_sent_again() -> None:
    sent = {"reminder_24h": toronto(6, 9, 10)}

    plan = before_visit(toronto(6, 10, 9), now=toronto(6, 9, 12), already_sent=sent)

    assert skip_reasons(plan)["reminder_24h"] == "already_sent"
    assert due_locally(plan)["reminder_2h"] == toronto(6, 10, 8)


def test_an_sms_due_at_05_30_before_a_07_30_visit_goes_out_at_20_59_the_evening_before() -> None:
    plan = before_visit(toronto(6, 11, 7, 30), now=toronto(6, 10, 12))

    assert due_locally(plan)["reminder_2h"] == toronto(6, 10, 20, 59)


def test_a_07_30_visit_booked_at_21_30_gets_no_2h_reminder_rather_than_a_night_text() -> None:
    plan = before_visit(toronto(6, 11, 7, 30), now=toronto(6, 10, 21, 30))

    assert skip_reasons(plan)["reminder_2h"] == "quiet_hours_until_after_start"
    assert due_locally(plan)["guidance_48h"] == toronto(6, 10, 21, 30)


def test_quiet_hours_configured_22_00_to_07_00_are_honoured() -> None:
    late_night_clinic = QuietHours(start=time(22), end=time(7))

    plan = after_visit(toronto(6, 10, 21, 30), now=toronto(6, 10, 22), quiet_hours=late_night_clinic)
    assert due_locally(plan)["check_in_24h"] == toronto(6, 11, 21, 30)

    plan = after_visit(toronto(6, 10, 22, 30), now=toronto(6, 10, 23), quiet_hours=late_night_clinic)
    assert due_locally(plan)["check_in_24h"] == toronto(6, 12, 7)


def test_email_is_not_held_back_by_quiet_hours() -> None:
    plan = before_visit(toronto(6, 12, 7, 30), now=toronto(6, 1, 12))

    assert due_locally(plan)["guidance_48h"] == toronto(6, 10, 7, 30)
    assert due_locally(plan)["reminder_24h"] == toronto(6, 11, 8)


def test_a_step_due_after_the_visit_has_begun_is_skipped() -> None:
    with_a_late_step = Schedule.model_validate(
        {"steps": [{"name": "running_late", "template": "reminder", "channel": "email", "offset": "10m"}]}
    )
    plan = before_visit(toronto(6, 10, 9), now=toronto(6, 10, 8), schedule=with_a_late_step)

    assert skip_reasons(plan) == {"running_late": "appointment_started"}


def test_nothing_is_sent_late_once_the_visit_has_begun() -> None:
    plan = before_visit(toronto(6, 10, 9), now=toronto(6, 10, 9, 5))

    assert plan.planned == ()
    assert set(skip_reasons(plan).values()) == {"due_time_passed"}


def test_soreness_check_ins_follow_the_completed_visit() -> None:
    plan = after_visit(toronto(6, 10, 16, 45), now=toronto(6, 10, 16, 50))

    assert due_locally(plan) == {"check_in_24h": toronto(6, 11, 16, 45), "check_in_48h": toronto(6, 12, 16, 45)}


@pytest.mark.parametrize("field", ["anchor", "now", "deadline"])
def test_a_time_without_a_zone_is_refused(field: str) -> None:
    moments = {"anchor": toronto(6, 10, 9), "now": toronto(6, 9, 9), "deadline": toronto(6, 10, 9)}
    moments[field] = moments[field].replace(tzinfo=None)

    with pytest.raises(ValueError, match=f"{field} must be timezone-aware"):
        plan_schedule(DRY_NEEDLING, time_zone=TORONTO, quiet_hours=QuietHours(), anchor=moments["anchor"],
                      now=moments["now"], deadline=moments["deadline"])


# Where a clock change meets the edge of quiet hours: rare, but a text must still never go out at night.
LATE_SMS = Schedule.model_validate(
    {"steps": [{"name": "check_in", "template": "soreness_check_in", "channel": "sms", "offset": "-1h",
                "send_if_late": True}]}
)


def test_a_text_held_in_the_repeated_fall_back_hour_waits_for_the_second_01_30() -> None:
    second_01_10 = datetime(2025, 11, 2, 6, 10, tzinfo=UTC)  # 01:10 EST, after clocks went back
    plan = plan_schedule(
        LATE_SMS,
        anchor=second_01_10,
        time_zone=TORONTO,
        quiet_hours=QuietHours(start=time(21), end=time(1, 30)),
        now=second_01_10,
    )

    assert plan.planned[0].due_at == datetime(2025, 11, 2, 6, 30, tzinfo=UTC)  # 01:30 EST


def test_a_quiet_window_ending_inside_the_spring_forward_gap_holds_the_text_until_the_next_day() -> None:
    only_02_30_to_02_45_allowed = QuietHours(start=time(2, 45), end=time(2, 30))
    plan = plan_schedule(
        LATE_SMS, anchor=toronto(3, 9, 1, 30), time_zone=TORONTO, quiet_hours=only_02_30_to_02_45_allowed,
        now=toronto(3, 9, 1, 30),
    )

    assert due_locally(plan)["check_in"] == toronto(3, 10, 2, 30)


def test_a_quiet_window_starting_inside_the_spring_forward_gap_cannot_be_dodged_earlier() -> None:
    plan = plan_schedule(
        LATE_SMS,
        anchor=toronto(3, 9, 5),
        time_zone=TORONTO,
        quiet_hours=QuietHours(start=time(2, 30), end=time(6)),
        now=toronto(3, 9, 0),
        deadline=toronto(3, 9, 5),
    )

    assert skip_reasons(plan) == {"check_in": "quiet_hours_until_after_start"}
