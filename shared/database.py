"""The database engine: SQLite (single node, embedded) or PostgreSQL (production, several instances)."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, Insert, MetaData, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator

from shared.sqlite_driver import one_trip_dbapi


class UtcDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns them aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SerializedJson(TypeDecorator[str]):
    """A JSON column's value given already serialized, as text (pydantic's `model_dump_json`), and bound as
    it is: serializing a model's dump again with `json.dumps` costs more than writing the row."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


def insert_ignoring_duplicates(engine_or_dialect_name: str, table: Table) -> Insert:
    """An INSERT that silently skips rows whose unique key already exists."""
    if engine_or_dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def create_engine(database_url: str) -> AsyncEngine:
    if database_url.startswith("sqlite"):
        # hide_parameters: a failed statement's error text must not carry patient data into logs.
        # module: SQLAlchemy's aiosqlite adapter, each statement one trip to the driver's thread.
        engine = create_async_engine(database_url, module=one_trip_dbapi(), connect_args={"timeout": 30},
                                     hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(connection: Any, _record: object) -> None:  # a DB-API connection
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before the consumer commits the Kafka offset of its event;
            # NORMAL could roll it back on power loss (cost measured by bench/sqlite_durability.py).
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_async_engine(
        database_url, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True
    )


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


def schema(*parts: MetaData | Table) -> MetaData:
    """One service's schema: its own tables plus copies of the shared ones it uses (ledger, outbox).

    A database made from it holds only that service's tables; shared code queries the shared
    `Table` objects, which name the same tables and columns.
    """
    combined = MetaData()
    for part in parts:
        tables = part.tables.values() if isinstance(part, MetaData) else [part]
        for table in tables:
            if table.name not in combined.tables:
                table.to_metadata(combined)
    return combined


async def create_tables(engine: AsyncEngine, metadata: MetaData) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)

