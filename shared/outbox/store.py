"""The transactional outbox: events are stored in the same transaction as the change that caused
them and published to Kafka afterwards by the relay, so an accepted change never loses its event."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    JSON,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.database import UtcDateTime

NOTIFY_FUNCTION = "outbox_rows_inserted"


def insert_notification_ddl(table_name: str) -> list[str]:
    """PostgreSQL: a statement that inserts rows into the outbox `table_name` notifies the channel of
    that name when its transaction commits (one notification per transaction), so that the relaying
    instance learns at once of events another instance stored. Each statement may run again."""
    return [
        f"CREATE OR REPLACE FUNCTION {NOTIFY_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_notify(TG_TABLE_NAME, ''); RETURN NULL; END $$",
        drop_insert_notification_ddl(table_name),
        f"CREATE TRIGGER {table_name}_inserted AFTER INSERT ON {table_name} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {NOTIFY_FUNCTION}()",
    ]


def drop_insert_notification_ddl(table_name: str) -> str:
    """PostgreSQL: inserts into the outbox `table_name` no longer notify (the function stays, shared)."""
    return f"DROP TRIGGER IF EXISTS {table_name}_inserted ON {table_name}"


def outbox_table(name: str, metadata: MetaData) -> Table:
    """The outbox table `name`, in the owning service's schema, with `<name>_dead` beside it for the
    rows that can never be published."""
    dead_letter_table(name, metadata)
    # Rows are published in id order; one key's rows are written in order by its single writer.
    table = Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("topic", String(200), nullable=False),
        Column("key", String(320), nullable=False),
        Column("value", Text, nullable=False),
        Column("headers", JSON, nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("published_at", UtcDateTime()),
        Index(f"ix_{name}_unpublished", "published_at", "id"),
    )
    event.listen(table, "after_create", _notify_on_insert)
    return table


def _notify_on_insert(table: Table, connection: Connection, **_: Any) -> None:
    if connection.dialect.name == "postgresql":
        for statement in insert_notification_ddl(table.name):
            connection.exec_driver_sql(statement)


def dead_letter_table(outbox_name: str, metadata: MetaData) -> Table:
    """Rows moved out of the outbox because Kafka can never take them (too large, not serializable)."""
    return Table(
        f"{outbox_name}_dead",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),  # the row's id in the outbox
        Column("topic", String(200), nullable=False),
        Column("key", String(320), nullable=False),
        Column("value", Text, nullable=False),
        Column("headers", JSON, nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("reason", String(500), nullable=False),
        Column("dead_at", UtcDateTime(), nullable=False),
    )


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    topic: str
    key: str
    value: str
    headers: dict[str, str]
    created_at: datetime


@dataclass(frozen=True)
class OutgoingEvent:
    """An event to store in the outbox: published to `topic` under `key`."""

    topic: str
    key: str
    event: BaseModel


@dataclass(frozen=True)
class OutboxBacklog:
    unpublished: int
    oldest_created_at: datetime | None


def event_headers(event: BaseModel) -> dict[str, str]:
    return {
        name: str(getattr(event, name))
        for name in ("event_type", "schema_version", "event_id")
        if hasattr(event, name)
    }


class Outbox:
    def __init__(self, table: Table) -> None:
        self.table = table
        self.dead = table.metadata.tables[f"{table.name}_dead"]
        # Built once, the values given with each execution: building a statement costs more than running it.
        self.insert = table.insert()

    def row(self, *, topic: str, key: str, event: BaseModel, now: datetime) -> dict[str, Any]:
        """The event's row, for `insert`."""
        return {"topic": topic, "key": key, "value": event.model_dump_json(), "headers": event_headers(event),
                "created_at": now}

    async def add(self, connection: AsyncConnection, *, topic: str, key: str, event: BaseModel, now: datetime) -> int:
        """Store the event in the caller's transaction; returns its outbox id."""
        result = await connection.execute(self.insert, self.row(topic=topic, key=key, event=event, now=now))
        inserted = result.inserted_primary_key
        if inserted is None:
            raise RuntimeError("the database returned no id for the outbox row")
        return int(inserted[0])

    async def add_many(self, connection: AsyncConnection, events: Sequence[OutgoingEvent], now: datetime) -> None:
        """Store the events in the caller's transaction, in one statement; they are published in this order."""
        if events:
            await connection.execute(self.insert, [self.row(topic=e.topic, key=e.key, event=e.event, now=now)
                                                   for e in events])

    async def oldest_unpublished(self, engine: AsyncEngine, limit: int) -> list[OutboxMessage]:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(self.table)
                    .where(self.table.c.published_at.is_(None))
                    .order_by(self.table.c.id)
                    .limit(limit)
                )
            ).all()
        return [OutboxMessage(r.id, r.topic, r.key, r.value, r.headers, r.created_at) for r in rows]

    async def mark_published(self, engine: AsyncEngine, ids: Sequence[int], now: datetime) -> None:
        if not ids:
            return
        async with engine.begin() as connection:
            await connection.execute(
                update(self.table).where(self.table.c.id.in_(list(ids))).values(published_at=now)
            )

    async def move_aside(self, engine: AsyncEngine, reasons: Mapping[int, str], now: datetime) -> None:
        """Move rows that can never be published to the dead table, with why: the rows behind them go on."""
        if not reasons:
            return
        ids = list(reasons)
        async with engine.begin() as connection:
            rows = (await connection.execute(select(self.table).where(self.table.c.id.in_(ids)))).all()
            if rows:
                await connection.execute(self.dead.insert(), [
                    {"id": r.id, "topic": r.topic, "key": r.key, "value": r.value, "headers": r.headers,
                     "created_at": r.created_at, "reason": reasons[r.id][:500], "dead_at": now}
                    for r in rows
                ])
                await connection.execute(delete(self.table).where(self.table.c.id.in_(ids)))

    async def backlog(self, engine: AsyncEngine) -> OutboxBacklog:
        async with engine.connect() as connection:
            count, oldest = (
                await connection.execute(
                    select(func.count(), func.min(self.table.c.created_at)).where(
                        self.table.c.published_at.is_(None)
                    )
                )
            ).one()
        return OutboxBacklog(unpublished=int(count), oldest_created_at=oldest)
