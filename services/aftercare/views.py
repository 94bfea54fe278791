"""Read-side queries of the aftercare service for clinic staff: appointment ids only, no patient details."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, true
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.aftercare.domain.trajectory import CheckInOnRecord, Trajectory, trajectory_of
from services.aftercare.tables import check_ins, escalations, replies


@dataclass(frozen=True)
class CheckInRow:
    appointment_id: str
    round: int
    rounds: int
    due_at: datetime
    status: str
    score: int | None
    answered_via: str | None
    unreadable_replies: int
    last_action: str | None


async def recent_check_ins(engine: AsyncEngine, status: str | None, limit: int) -> list[CheckInRow]:
    """The newest check-ins by due time, each with the action taken on its latest reply."""
    latest_reply = (
        select(replies.c.action)
        .where(replies.c.check_in_id == check_ins.c.id)
        .order_by(replies.c.received_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(check_ins.c.appointment_id, check_ins.c.round, check_ins.c.rounds, check_ins.c.due_at,
               check_ins.c.status, check_ins.c.score, check_ins.c.answered_via, check_ins.c.unreadable_replies,
               latest_reply.label("last_action"))
        .where(check_ins.c.status == status if status else true())
        .order_by(check_ins.c.due_at.desc())
        .limit(limit)
    )
    async with engine.connect() as connection:
        return [CheckInRow(**row._asdict()) for row in await connection.execute(query)]


@dataclass(frozen=True)
class EscalationRow:
    id: str
    reference: str
    appointment_id: str | None
    reasons: list[str]
    raised_at: datetime
    status: str
    paged: int  # how many of the chain (on-call, backup, lead) have been paged
    acknowledged_by: str | None
    acknowledged_at: datetime | None


async def recent_escalations(engine: AsyncEngine, status: str | None, limit: int) -> list[EscalationRow]:
    """The newest escalations: where each stands in the chain and who took it. No patient details."""
    query = (
        select(escalations.c.id, escalations.c.reference, escalations.c.appointment_id, escalations.c.reasons,
               escalations.c.raised_at, escalations.c.status, escalations.c.paged, escalations.c.acknowledged_by,
               escalations.c.acknowledged_at)
        .where(escalations.c.status == status if status else true())
        .order_by(escalations.c.raised_at.desc())
        .limit(limit)
    )
    async with engine.connect() as connection:
        return [EscalationRow(**row._asdict()) for row in await connection.execute(query)]


async def plan_of(connection: AsyncConnection, appointment_id: str) -> tuple[str, str] | None:
    """The patient and appointment type of a visit's check-ins; None when they were not kept."""
    row = (await connection.execute(
        select(check_ins.c.patient_id, check_ins.c.appointment_type)
        .where(check_ins.c.appointment_id == appointment_id, check_ins.c.patient_id.is_not(None))
        .limit(1)
    )).first()
    return (row.patient_id, row.appointment_type) if row else None


async def patient_check_ins(connection: AsyncConnection, patient_id: str,
                            appointment_type: str | None = None) -> list[tuple[str | None, CheckInOnRecord]]:
    """Every check-in of the patient (of one appointment type, if given), with its type."""
    query = (
        select(check_ins.c.appointment_type, check_ins.c.appointment_id, check_ins.c.visit_at, check_ins.c.round,
               check_ins.c.score, check_ins.c.answered_at, check_ins.c.answered_via)
        .where(check_ins.c.patient_id == patient_id)
        .where(check_ins.c.appointment_type == appointment_type if appointment_type else true())
        .order_by(check_ins.c.visit_at, check_ins.c.round)
    )
    return [(row.appointment_type, CheckInOnRecord(row.appointment_id, row.visit_at, row.round, row.score,
                                                   row.answered_at, row.answered_via))
            for row in await connection.execute(query)]


async def patient_trajectory(connection: AsyncConnection, patient_id: str, appointment_type: str) -> Trajectory:
    """The patient's scores over their visits of this type."""
    records = [record for _, record in await patient_check_ins(connection, patient_id, appointment_type)]
    return trajectory_of(patient_id, appointment_type, records)


async def patient_trajectories(engine: AsyncEngine, patient_id: str) -> list[Trajectory]:
    """One trajectory per appointment type the patient has check-ins for, by type."""
    async with engine.connect() as connection:
        rows = await patient_check_ins(connection, patient_id)
    by_type: dict[str | None, list[CheckInOnRecord]] = {}
    for appointment_type, record in rows:
        by_type.setdefault(appointment_type, []).append(record)
    return [trajectory_of(patient_id, appointment_type, records)
            for appointment_type, records in sorted(by_type.items(), key=lambda item: item[0] or "")]
