"""Reading and writing check-ins and replies, inside the caller's transaction."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.aftercare.domain.check_ins import CheckInPlan
from services.aftercare.tables import check_ins, replies
from shared.database import insert_ignoring_duplicates


@dataclass(frozen=True)
class CheckIn:
    id: str
    appointment_id: str
    round: int
    rounds: int
    phone: str | None
    email: str | None
    locale: str
    context: dict[str, Any]
    due_at: datetime
    status: str
    score: int | None
    unreadable_replies: int

    @property
    def is_open(self) -> bool:
        return self.status == "scheduled"


def _check_in(row) -> CheckIn:  # type: ignore[no-untyped-def]
    return CheckIn(row.id, row.appointment_id, row.round, row.rounds, row.phone, row.email, row.locale,
                   row.context, row.due_at, row.status, row.score, row.unreadable_replies)


class CheckInStore:
    def __init__(self, dialect_name: str) -> None:
        self.dialect_name = dialect_name

    async def add(self, connection: AsyncConnection, appointment_id: str, plans: tuple[CheckInPlan, ...],
                  phone: str | None, email: str | None, locale: str, context: dict[str, Any],
                  now: datetime) -> list[str]:
        """Store planned check-ins; returns the ids of those not stored before."""
        if not plans:
            return []
        statement = insert_ignoring_duplicates(self.dialect_name, check_ins).returning(check_ins.c.id)
        result = await connection.execute(statement, [
            {"id": plan.id, "appointment_id": appointment_id, "round": plan.round, "rounds": plan.rounds,
             "phone": phone, "email": email, "locale": locale, "context": context, "due_at": plan.due_at,
             "status": "scheduled", "unreadable_replies": 0, "created_at": now, "updated_at": now}
            for plan in plans
        ])
        return [row.id for row in result]

    async def get(self, connection: AsyncConnection, check_in_id: str) -> CheckIn | None:
        row = (await connection.execute(select(check_ins).where(check_ins.c.id == check_in_id))).first()
        return _check_in(row) if row else None

    async def latest_sent_to_phone(self, connection: AsyncConnection, phone: str, now: datetime) -> CheckIn | None:
        """The check-in a text from this number answers: the most recent one already due."""
        row = (await connection.execute(
            select(check_ins)
            .where(and_(check_ins.c.phone == phone, check_ins.c.due_at <= now))
            .order_by(check_ins.c.due_at.desc())
            .limit(1)
        )).first()
        return _check_in(row) if row else None

    async def of_appointment(self, connection: AsyncConnection, appointment_id: str) -> list[CheckIn]:
        result = await connection.execute(
            select(check_ins).where(check_ins.c.appointment_id == appointment_id).order_by(check_ins.c.round)
        )
        return [_check_in(row) for row in result]

    async def record_answer(self, connection: AsyncConnection, check_in_id: str, score: int | None,
                            via: str, now: datetime, note: str | None = None) -> bool:
        """Record the answer of an open check-in; False when it was answered already (a second click)."""
        result = await connection.execute(
            update(check_ins)
            .where(and_(check_ins.c.id == check_in_id, check_ins.c.status == "scheduled"))
            .values(status="answered", score=score, answered_at=now, answered_via=via, note=note, updated_at=now)
        )
        return result.rowcount == 1

    async def add_note(self, connection: AsyncConnection, check_in_id: str, note: str, now: datetime) -> None:
        await connection.execute(
            update(check_ins).where(check_ins.c.id == check_in_id).values(note=note, updated_at=now)
        )

    async def count_unreadable(self, connection: AsyncConnection, check_in_id: str, now: datetime) -> None:
        await connection.execute(
            update(check_ins)
            .where(check_ins.c.id == check_in_id)
            .values(unreadable_replies=check_ins.c.unreadable_replies + 1, updated_at=now)
        )

    async def close_remaining(self, connection: AsyncConnection, appointment_id: str, status: str,
                              now: datetime) -> int:
        result = await connection.execute(
            update(check_ins)
            .where(and_(check_ins.c.appointment_id == appointment_id, check_ins.c.status == "scheduled"))
            .values(status=status, updated_at=now)
        )
        return result.rowcount

    async def past_last_round(self, connection: AsyncConnection, due_before: datetime) -> list[CheckIn]:
        """Open last-round check-ins whose reply window has ended."""
        result = await connection.execute(
            select(check_ins).where(and_(
                check_ins.c.status == "scheduled",
                check_ins.c.round == check_ins.c.rounds,
                check_ins.c.due_at <= due_before,
            ))
        )
        return [_check_in(row) for row in result]

    # --- replies ---

    async def response_to(self, connection: AsyncConnection, message_sid: str) -> tuple[bool, str | None]:
        row = (await connection.execute(
            select(replies.c.response).where(replies.c.message_sid == message_sid)
        )).first()
        return (row is not None, row.response if row else None)

    async def add_reply(self, connection: AsyncConnection, **values: Any) -> None:
        await connection.execute(replies.insert().values(**values))
