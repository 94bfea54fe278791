"""Read-side queries of the aftercare service for clinic staff: appointment ids only, no patient details."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, true
from sqlalchemy.ext.asyncio import AsyncEngine

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
