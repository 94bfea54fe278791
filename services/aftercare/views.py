"""Read-side queries of the aftercare service for clinic staff: appointment ids only, no patient details."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aftercare.tables import check_ins, replies


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
