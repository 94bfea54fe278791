"""The aftercare service's queries: check-ins, replies and the consent trail.

Each store is built on the engine; a method that takes a connection runs in the caller's transaction.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.aftercare.domain.answers import ConsentChange, ReplyOnRecord
from services.aftercare.domain.check_ins import CheckIn, CheckInPlan, CheckInStatus
from services.aftercare.domain.reminder_replies import ReminderAnswer, UpcomingStatus, UpcomingVisit
from services.aftercare.tables import check_ins, consent_audit, replies, upcoming_visits
from shared.database import insert_ignoring_duplicates

MAX_NOTES_KEPT = 40_000  # the newest notes of a check-in, in characters: twenty notes as long as allowed


def _check_in(row: Row[Any]) -> CheckIn:
    return CheckIn(row.id, row.appointment_id, row.round, row.rounds, row.phone, row.email, row.locale,
                   row.context, row.due_at, CheckInStatus(row.status), row.score, row.unreadable_replies)


@dataclass(frozen=True)
class VisitCheckIns:
    """A completed visit's planned check-ins, with where and in which language they go."""

    appointment_id: str
    plans: tuple[CheckInPlan, ...]
    phone: str | None
    email: str | None
    locale: str
    context: dict[str, Any]
    patient_id: str | None = None
    appointment_type: str | None = None
    visit_at: datetime | None = None


class CheckInStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def locale_of(self, check_in_id: str) -> str | None:
        async with self.engine.connect() as connection:
            check_in = await self.get(connection, check_in_id)
        return check_in.locale if check_in else None

    async def add(self, connection: AsyncConnection, appointment_id: str, plans: tuple[CheckInPlan, ...],
                  phone: str | None, email: str | None, locale: str, context: dict[str, Any],
                  now: datetime, *, patient_id: str | None = None, appointment_type: str | None = None,
                  visit_at: datetime | None = None) -> list[str]:
        """Store planned check-ins; returns the ids of those not stored before.

        The patient, appointment type and visit time place the check-ins on the patient's trajectory."""
        return await self.add_many(connection, [VisitCheckIns(
            appointment_id, plans, phone, email, locale, context, patient_id, appointment_type, visit_at)], now)

    async def add_many(self, connection: AsyncConnection, visits: Sequence[VisitCheckIns], now: datetime) -> list[str]:
        """Store the planned check-ins of several visits in one statement; returns the ids of those not stored
        before (a check-in planned twice is stored once, as first planned)."""
        rows: dict[str, dict[str, Any]] = {}
        for visit in visits:
            for plan in visit.plans:
                rows.setdefault(plan.id, {
                    "id": plan.id, "appointment_id": visit.appointment_id, "round": plan.round, "rounds": plan.rounds,
                    "phone": visit.phone, "email": visit.email, "locale": visit.locale, "context": visit.context,
                    "due_at": plan.due_at, "status": CheckInStatus.SCHEDULED, "unreadable_replies": 0,
                    "created_at": now, "updated_at": now, "patient_id": visit.patient_id,
                    "appointment_type": visit.appointment_type, "visit_at": visit.visit_at,
                })
        if not rows:
            return []
        statement = insert_ignoring_duplicates(self.engine.dialect.name, check_ins).returning(check_ins.c.id)
        result = await connection.execute(statement, list(rows.values()))
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

    async def open_sent_to_phone(self, connection: AsyncConnection, phone: str, now: datetime) -> list[CheckIn]:
        """Open check-ins already due for this number, newest first: more than one patient may share it."""
        result = await connection.execute(
            select(check_ins)
            .where(and_(check_ins.c.phone == phone, check_ins.c.due_at <= now,
                        check_ins.c.status == CheckInStatus.SCHEDULED))
            .order_by(check_ins.c.due_at.desc())
        )
        return [_check_in(row) for row in result]

    async def hold(self, connection: AsyncConnection, check_in_id: str, now: datetime) -> None:
        """Write to the check-in first, so that answers to it are applied one after the other.

        PostgreSQL locks the row until the transaction ends, SQLite the database: a second answer
        (a double click, two notes at once) waits, then reads what the first one recorded.
        """
        await connection.execute(update(check_ins).where(check_ins.c.id == check_in_id).values(updated_at=now))

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
            .where(and_(check_ins.c.id == check_in_id, check_ins.c.status == CheckInStatus.SCHEDULED))
            .values(status=CheckInStatus.ANSWERED, score=score, answered_at=now, answered_via=via, note=note,
                    updated_at=now)
        )
        return result.rowcount == 1

    async def add_note(self, connection: AsyncConnection, check_in_id: str, note: str, now: datetime) -> None:
        """A later note is added after the earlier ones, under the time it arrived."""
        current = (await connection.execute(select(check_ins.c.note).where(check_ins.c.id == check_in_id))).scalar()
        notes = f"{current}\n\n[{now.isoformat(timespec='minutes')}] {note}" if current else note
        await connection.execute(update(check_ins).where(check_ins.c.id == check_in_id).values(
            note=notes[-MAX_NOTES_KEPT:], updated_at=now))

    async def count_unreadable(self, connection: AsyncConnection, check_in_id: str, now: datetime) -> None:
        await connection.execute(
            update(check_ins)
            .where(check_ins.c.id == check_in_id)
            .values(unreadable_replies=check_ins.c.unreadable_replies + 1, updated_at=now)
        )

    async def close_remaining(self, connection: AsyncConnection, appointment_id: str, status: CheckInStatus,
                              now: datetime) -> int:
        result = await connection.execute(
            update(check_ins)
            .where(and_(check_ins.c.appointment_id == appointment_id,
                        check_ins.c.status == CheckInStatus.SCHEDULED))
            .values(status=status, updated_at=now)
        )
        return result.rowcount

    async def past_last_round(self, connection: AsyncConnection, due_before: datetime) -> list[CheckIn]:
        """Open last-round check-ins whose reply window has ended."""
        result = await connection.execute(
            select(check_ins).where(and_(
                check_ins.c.status == CheckInStatus.SCHEDULED,
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

    async def replies_to(self, connection: AsyncConnection, check_in_ids: Sequence[str]) -> int:
        if not check_in_ids:
            return 0
        return int((await connection.execute(
            select(func.count()).select_from(replies).where(replies.c.check_in_id.in_(list(check_in_ids)))
        )).scalar_one())

    async def paged_since(self, connection: AsyncConnection, check_in_id: str, since: datetime) -> list[list[str]]:
        """The reasons of each answer to this check-in that paged staff since `since`."""
        result = await connection.execute(
            select(replies.c.reasons).where(and_(replies.c.check_in_id == check_in_id, replies.c.action == "escalate",
                                                 replies.c.received_at >= since))
        )
        return [list(row.reasons) for row in result]

    async def add_reply(self, connection: AsyncConnection, reply: ReplyOnRecord, response: str | None) -> None:
        await connection.execute(replies.insert().values(**asdict(reply), response=response))


class ConsentTrail:
    """Every opt-out and opt-in, kept as an audit trail."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, connection: AsyncConnection, change: ConsentChange, now: datetime) -> None:
        await connection.execute(consent_audit.insert().values(
            channel=change.channel, address=change.address, subscribed=change.subscribed, source=change.source,
            occurred_at=now,
        ))


class UpcomingVisitStore:
    """The visits still to come, kept from the appointment events, and their patients' answers to reminders."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def apply(self, connection: AsyncConnection, visits: Sequence[UpcomingVisit], now: datetime) -> None:
        """Each visit as its newest event leaves it (an older or repeated event changes nothing), in one
        statement for a whole batch. A reschedule forgets the answer given to the old time."""
        newest: dict[str, UpcomingVisit] = {}
        for visit in visits:
            if visit.appointment_id not in newest or visit.sequence > newest[visit.appointment_id].sequence:
                newest[visit.appointment_id] = visit
        if not newest:
            return
        statement = (postgresql.insert(upcoming_visits) if self.engine.dialect.name == "postgresql"
                     else sqlite.insert(upcoming_visits))
        newer = statement.excluded
        same_time = upcoming_visits.c.starts_at == newer.starts_at
        kept = ("sequence", "phone", "locale", "appointment_type", "starts_at", "status", "planned_at", "context",
                "updated_at")
        # One upsert: a visit not yet known is added; a known one takes a newer event's values.
        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=[upcoming_visits.c.appointment_id],
                set_={name: newer[name] for name in kept} | {
                    # An answer was to the visit's time: a reschedule forgets it, the next reminder asks again.
                    "answer": case((same_time, upcoming_visits.c.answer), else_=None),
                    "answered_at": case((same_time, upcoming_visits.c.answered_at), else_=None),
                },
                where=upcoming_visits.c.sequence < newer.sequence,
            ),
            [_upcoming_row(visit, now) for visit in newest.values()],
        )

    async def of_phone(self, connection: AsyncConnection, phone: str, now: datetime) -> list[UpcomingVisit]:
        """The phone's booked visits that have not started."""
        result = await connection.execute(
            select(upcoming_visits).where(and_(
                upcoming_visits.c.phone == phone, upcoming_visits.c.starts_at > now,
                upcoming_visits.c.status == UpcomingStatus.BOOKED,
            )).order_by(upcoming_visits.c.starts_at)
        )
        return [_upcoming(row) for row in result]

    async def hold(self, connection: AsyncConnection, appointment_id: str, now: datetime) -> UpcomingVisit | None:
        """Write to the visit first, so that two replies at once are applied one after the other; then read it."""
        await connection.execute(update(upcoming_visits).where(upcoming_visits.c.appointment_id == appointment_id)
                                 .values(updated_at=now))
        row = (await connection.execute(
            select(upcoming_visits).where(upcoming_visits.c.appointment_id == appointment_id))).first()
        return _upcoming(row) if row else None

    async def record_answer(self, connection: AsyncConnection, appointment_id: str, answer: ReminderAnswer,
                            now: datetime) -> None:
        await connection.execute(update(upcoming_visits).where(upcoming_visits.c.appointment_id == appointment_id)
                                 .values(answer=answer, answered_at=now, updated_at=now))


def _upcoming_row(visit: UpcomingVisit, now: datetime) -> dict[str, Any]:
    return {"appointment_id": visit.appointment_id, "sequence": visit.sequence, "phone": visit.phone,
            "locale": visit.locale, "appointment_type": visit.appointment_type, "starts_at": visit.starts_at,
            "status": visit.status, "planned_at": visit.planned_at, "context": visit.context, "answer": None,
            "answered_at": None, "updated_at": now}


def _upcoming(row: Row[Any]) -> UpcomingVisit:
    return UpcomingVisit(row.appointment_id, row.sequence, row.phone, row.locale, row.appointment_type,
                         row.starts_at, UpcomingStatus(row.status), row.planned_at, row.context,
                         ReminderAnswer(row.answer) if row.answer else None)
