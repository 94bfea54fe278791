"""The transactional outbox: events are stored with the change that caused them, published later."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.booking_events.tables import outbox
from shared.events import AppointmentEvent
from shared.topics import APPOINTMENTS


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    topic: str
    key: str
    value: str
    headers: dict[str, str]
    created_at: datetime


@dataclass(frozen=True)
class OutboxBacklog:
    unpublished: int
    oldest_created_at: datetime | None


def event_headers(event: AppointmentEvent) -> dict[str, str]:
    return {
        "event_type": event.event_type,
        "schema_version": str(event.schema_version),
        "event_id": str(event.event_id),
    }


async def add_event(connection: AsyncConnection, event: AppointmentEvent, now: datetime) -> int:
    """Store the event in the caller's transaction; returns its outbox id."""
    result = await connection.execute(
        outbox.insert().values(
            topic=APPOINTMENTS,
            key=event.appointment_id,
            value=event.model_dump_json(),
            headers=event_headers(event),
            created_at=now,
        )
    )
    (outbox_id,) = result.inserted_primary_key or (None,)
    return int(outbox_id)


async def oldest_unpublished(engine: AsyncEngine, limit: int) -> list[OutboxMessage]:
    """Unpublished messages, oldest first."""
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(outbox)
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.id)
                .limit(limit)
            )
        ).all()
    return [
        OutboxMessage(row.id, row.topic, row.key, row.value, dict(row.headers), row.created_at)
        for row in rows
    ]


async def mark_published(engine: AsyncEngine, ids: Sequence[int], now: datetime) -> None:
    if not ids:
        return
    async with engine.begin() as connection:
        await connection.execute(
            update(outbox).where(outbox.c.id.in_(list(ids))).values(published_at=now)
        )


async def backlog(engine: AsyncEngine) -> OutboxBacklog:
    async with engine.connect() as connection:
        count, oldest = (
            await connection.execute(
                select(func.count(), func.min(outbox.c.created_at)).where(
                    outbox.c.published_at.is_(None)
                )
            )
        ).one()
    return OutboxBacklog(unpublished=int(count), oldest_created_at=oldest)
