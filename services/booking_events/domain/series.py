"""Treatment plans: several sessions booked at once, each its own appointment. Pure: no I/O.

Every event of a plan's session carries the plan as it stands after the change (`series`): the
sessions in their order, each with its start and whether it was cancelled. A plan is booked whole
or not at all; later, each session changes through the appointment's own commands.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from services.booking_events.domain.appointment import AppointmentStatus
from services.booking_events.domain.commands import BookAppointment, BookSeries
from services.booking_events.domain.decisions import Decision, decide
from services.booking_events.domain.refusals import InvalidField
from shared.events.appointment import AppointmentSeries, SeriesSession


@dataclass(frozen=True)
class SessionRow:
    """What the store keeps of one session of a plan, with its appointment's current start and status."""

    appointment_id: str
    series_id: str
    session_number: int
    session_count: int
    starts_at: datetime
    status: AppointmentStatus


def decide_series(command: BookSeries, now: datetime) -> tuple[Decision, ...]:
    """One booking decision per session, each event carrying the whole plan; refuses the plan if
    any session cannot be booked (a past start names its place in the list)."""
    starts = [slot.starts_at for slot in command.sessions]
    if len(set(starts)) != len(starts):
        raise InvalidField("starts_at", "two sessions of the plan start at the same time")
    decisions = []
    for index, slot in enumerate(command.sessions):
        details = command.template.model_copy(update={"starts_at": slot.starts_at})
        try:
            decisions.append(decide(None, BookAppointment(slot.appointment_id, command.patient, details), now))
        except InvalidField as refused:
            raise InvalidField(f"starts_at[{index}]", refused.message) from None
    rows = [
        SessionRow(d.appointment.appointment_id, command.series_id, number, len(decisions),
                   d.appointment.details.starts_at, d.appointment.status)
        for number, d in enumerate(decisions, start=1)
    ]
    return tuple(with_series(d, rows) for d in decisions)


def with_series(decision: Decision, rows: Iterable[SessionRow]) -> Decision:
    """The decision with its event carrying the plan, the decided change applied to its own session."""
    changed = decision.appointment
    own: SessionRow | None = None
    sessions = []
    for row in sorted(rows, key=lambda r: r.session_number):
        if row.appointment_id == changed.appointment_id:
            row = own = SessionRow(row.appointment_id, row.series_id, row.session_number, row.session_count,
                                   changed.details.starts_at, changed.status)
        sessions.append(SeriesSession(appointment_id=row.appointment_id, session_number=row.session_number,
                                      starts_at=row.starts_at, cancelled=row.status is AppointmentStatus.CANCELLED))
    if own is None:
        return decision
    series = AppointmentSeries(series_id=own.series_id, session_number=own.session_number,
                               session_count=own.session_count, sessions=tuple(sessions))
    return Decision(decision.appointment, decision.event.model_copy(update={"series": series}))



def repeated_starts(first: datetime, count: int, every_days: int, zone: ZoneInfo) -> list[datetime]:
    """`count` starts `every_days` apart at the first one's wall-clock time in `zone`, across DST changes."""
    wall = first.astimezone(zone).replace(tzinfo=None)
    return [(wall + timedelta(days=every_days * n)).replace(tzinfo=zone) for n in range(count)]
