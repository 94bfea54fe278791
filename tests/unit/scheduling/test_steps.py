from datetime import time, timedelta

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from shared.scheduling import QuietHours, Schedule, SchedulesByAppointmentType, ScheduleStep


def step(**overrides: object) -> dict[str, object]:
    return {"name": "reminder_2h", "template": "reminder", "channel": "sms", "offset": "-2h", **overrides}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-48h", timedelta(hours=-48)),
        ("-2h", timedelta(hours=-2)),
        ("24h", timedelta(hours=24)),
        ("+24h", timedelta(hours=24)),
        ("90m", timedelta(minutes=90)),
        ("-1d", timedelta(days=-1)),
        ("-1d2h", -timedelta(days=1, hours=2)),
        ("1d2h30m", timedelta(days=1, hours=2, minutes=30)),
        ("0m", timedelta(0)),
        ("-45s", timedelta(seconds=-45)),
        ("1m30s", timedelta(seconds=90)),
    ],
)
def test_offsets_are_read_in_the_clinics_notation(text: str, expected: timedelta) -> None:
    assert ScheduleStep.model_validate(step(offset=text)).offset == expected


@pytest.mark.parametrize("garbage", ["", "48", "h", "-", "2h1d", "1.5h", "48 hours", "--2h", "-PT2H", 48, None])
def test_a_bad_offset_is_refused_naming_the_value(garbage: object) -> None:
    with pytest.raises(ValidationError) as refusal:
        ScheduleStep.model_validate(step(offset=garbage))
    assert f"offset {garbage!r}" in str(refusal.value)


def test_an_offset_in_fractions_of_a_second_is_refused() -> None:
    with pytest.raises(ValidationError, match="whole number of seconds"):
        ScheduleStep.model_validate(step(offset=timedelta(seconds=-1.5)))


def test_offsets_are_written_back_in_the_clinics_notation() -> None:
    written = ScheduleStep.model_validate(step(offset="-1d2h30m")).model_dump(mode="json")
    assert written["offset"] == "-26h30m"
    assert ScheduleStep.model_validate(written).offset == -timedelta(days=1, hours=2, minutes=30)


def test_a_step_name_appearing_twice_in_a_schedule_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match=r"unique.*repeated: guidance_48h"):
        Schedule.model_validate(
            {"steps": [step(name="guidance_48h"), step(name="reminder_2h"), step(name="guidance_48h")]}
        )


def test_a_step_name_must_be_slug_like() -> None:
    with pytest.raises(ValidationError, match="'Guidance 48h' must be lower-case"):
        ScheduleStep.model_validate(step(name="Guidance 48h"))


def test_texts_wait_out_quiet_hours_and_emails_do_not_unless_configured() -> None:
    assert ScheduleStep.model_validate(step(channel="sms")).held_in_quiet_hours
    assert not ScheduleStep.model_validate(step(channel="email")).held_in_quiet_hours
    assert ScheduleStep.model_validate(step(channel="email", hold_in_quiet_hours=True)).held_in_quiet_hours
    assert not ScheduleStep.model_validate(step(channel="sms", hold_in_quiet_hours=False)).held_in_quiet_hours


def test_default_quiet_hours_run_from_21_00_to_08_00_across_midnight() -> None:
    quiet = QuietHours()
    assert [quiet.contains(time(hour)) for hour in (20, 21, 23, 0, 7, 8)] == [False, True, True, True, True, False]


def test_quiet_hours_within_one_day_and_empty_quiet_hours() -> None:
    afternoon_nap = QuietHours(start=time(13), end=time(15))
    assert [afternoon_nap.contains(time(hour)) for hour in (12, 13, 14, 15)] == [False, True, True, False]
    assert not any(QuietHours(start=time(22), end=time(22)).contains(time(hour)) for hour in range(24))


def test_quiet_hours_written_unquoted_in_yaml_are_refused_rather_than_misread() -> None:
    with pytest.raises(ValidationError, match="quote it in YAML"):
        QuietHours.model_validate(yaml.safe_load("start: 22:00\nend: '07:00'"))
    assert QuietHours.model_validate(yaml.safe_load("start: '22:00'\nend: '07:00'")) == QuietHours(
        start=time(22), end=time(7)
    )


def test_schedules_by_appointment_type_load_from_the_clinics_yaml() -> None:
    config = yaml.safe_load(
        """
        dry_needling:
          steps:
            - {name: guidance_48h, template: pre_session_guidance, channel: email, offset: -48h, send_if_late: true}
            - {name: reminder_2h, template: reminder, channel: sms, offset: -2h, resend_on_reschedule: true}
        massage_therapy:
          steps:
            - {name: check_in_24h, template: soreness_check_in, channel: sms, offset: 24h}
        """
    )
    schedules = TypeAdapter(SchedulesByAppointmentType).validate_python(config)
    assert [s.offset for s in schedules["dry_needling"].steps] == [timedelta(hours=-48), timedelta(hours=-2)]
    assert schedules["massage_therapy"].steps[0].template == "soreness_check_in"


def test_an_unknown_setting_is_refused_rather_than_ignored() -> None:
    with pytest.raises(ValidationError, match="send_if_lte"):
        ScheduleStep.model_validate(step(send_if_lte=True))
