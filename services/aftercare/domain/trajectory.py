"""A patient's soreness over a treatment plan, as the clinician reads it. Pure.

A plan is the patient's visits of one appointment type over time (not a booking's series id, which
not every booking system sends). Each answered check-in with a score is one point, in the order the
patient lived them: by visit, then by round of that visit. Check-ins without a score (not answered,
closed, answered with words only) are no point, but their visit still counts in the visit numbers,
so "visit 3" is the plan's third visit even when the second one went unanswered.

The trend compares the latest score with the first: a change smaller than `MEANINGFUL_CHANGE` is
steady — about two points is the smallest change on the 0-10 scale that patients notice.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

MEANINGFUL_CHANGE = 2
_UNKNOWN = datetime.max.replace(tzinfo=UTC)


class Trend(StrEnum):
    RISING = "rising"
    FALLING = "falling"
    STEADY = "steady"


class Band(StrEnum):
    """Where a score falls between the clinic's thresholds."""

    MILD = "mild"  # at or below the clinic's reassurance threshold
    MODERATE = "moderate"
    ESCALATION = "escalation"  # at or above the clinic's escalation threshold


@dataclass(frozen=True)
class CheckInOnRecord:
    """One check-in of the patient, as stored: answered or not."""

    appointment_id: str
    visit_at: datetime | None  # None for check-ins recorded before the visit time was kept
    round: int
    score: int | None
    answered_at: datetime | None
    answered_via: str | None


@dataclass(frozen=True)
class ScorePoint:
    visit: int  # the plan's visit number, from 1
    appointment_id: str
    visit_at: datetime | None
    round: int
    score: int
    answered_at: datetime
    via: str


@dataclass(frozen=True)
class Trajectory:
    patient_id: str
    appointment_type: str | None
    points: tuple[ScorePoint, ...]
    visits: int  # visits of the plan with a check-in, answered or not

    @property
    def first(self) -> int | None:
        return self.points[0].score if self.points else None

    @property
    def latest(self) -> int | None:
        return self.points[-1].score if self.points else None

    @property
    def change(self) -> int | None:
        """Latest minus first; None until there are two scores to compare."""
        if len(self.points) < 2:
            return None
        return self.points[-1].score - self.points[0].score

    @property
    def trend(self) -> Trend | None:
        change = self.change
        if change is None:
            return None
        if abs(change) < MEANINGFUL_CHANGE:
            return Trend.STEADY
        return Trend.RISING if change > 0 else Trend.FALLING


def trajectory_of(patient_id: str, appointment_type: str | None,
                  check_ins: Iterable[CheckInOnRecord]) -> Trajectory:
    """The points of every scored check-in among `check_ins` (all of one patient and type), in plan order."""
    records = list(check_ins)
    visit_numbers = _visit_numbers(records)
    scored = sorted(
        (record for record in records if record.score is not None and record.answered_at is not None),
        key=lambda record: (visit_numbers[record.appointment_id], record.round, record.answered_at),
    )
    points = tuple(
        ScorePoint(visit=visit_numbers[record.appointment_id], appointment_id=record.appointment_id,
                   visit_at=record.visit_at, round=record.round, score=record.score,
                   answered_at=record.answered_at, via=record.answered_via or "")
        for record in scored
        if record.score is not None and record.answered_at is not None
    )
    return Trajectory(patient_id, appointment_type, points, visits=len(visit_numbers))


def band(score: int, mild_at_or_below: int, escalate_at_or_above: int) -> Band:
    if score >= escalate_at_or_above:
        return Band.ESCALATION
    if score <= mild_at_or_below:
        return Band.MILD
    return Band.MODERATE


def _visit_numbers(records: list[CheckInOnRecord]) -> dict[str, int]:
    """Visits numbered by when they took place; a visit of unknown time goes by its first answer, else last."""
    def when(appointment_id: str) -> tuple[datetime, str]:
        own = [record for record in records if record.appointment_id == appointment_id]
        known = [record.visit_at for record in own if record.visit_at is not None]
        answered = [record.answered_at for record in own if record.answered_at is not None]
        return (min(known or answered or [_UNKNOWN]), appointment_id)

    visits = sorted({record.appointment_id for record in records}, key=when)
    return {appointment_id: number for number, appointment_id in enumerate(visits, start=1)}
