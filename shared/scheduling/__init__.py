"""When an appointment's messages are due: the clinic's schedule configuration and pure planning."""
from shared.scheduling.plan import PlannedMessage, SchedulePlan, SkippedStep, SkipReason, plan_schedule
from shared.scheduling.steps import (
    Offset,
    QuietHours,
    Schedule,
    SchedulesByAppointmentType,
    ScheduleStep,
    format_offset,
    parse_offset,
)

__all__ = [
    "Offset",
    "PlannedMessage",
    "QuietHours",
    "Schedule",
    "SchedulePlan",
    "ScheduleStep",
    "SchedulesByAppointmentType",
    "SkipReason",
    "SkippedStep",
    "format_offset",
    "parse_offset",
    "plan_schedule",
]
