"""The database engine: SQLite (single node, embedded) or PostgreSQL (production, several instances)."""
from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Dialect, Insert, MetaData, String, Table, bindparam, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator, TypeEngine

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


class _ValueList(TypeDecorator[Collection[Any]]):
    """A list of text values (ids) bound as one parameter: JSON text on SQLite (read back by json_each), an
    array of text on PostgreSQL."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(String()))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Collection[Any] | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return list(value) if dialect.name == "postgresql" else json.dumps(list(value))


class among(ColumnElement[bool]):
    """`column` (text) is one of the values of the list given as the parameter `name`, with one parameter however
    long the list: `column IN (SELECT value FROM json_each(:name))` on SQLite, `column = ANY(:name)` on
    PostgreSQL. An expanding IN (`column.in_(...)`) renders and binds one parameter per value at each
    execution, which costs more than the lookups when a batch asks for thousands."""

    inherit_cache = True
    type = Boolean()
    # SQLAlchemy's declaration of the parts of its cache key.
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement),  # noqa: RUF012
                           ("values", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: ColumnElement[Any], name: str) -> None:
        self.column = column
        self.values: BindParameter[Any] = bindparam(name, type_=_ValueList())

    def self_group(self, against: Any = None) -> among:
        return self  # a whole predicate already: not to be compared with true where booleans are integers


@compiles(among)
def _among_in_json(element: among, compiler: SQLCompiler, **kw: Any) -> str:
    values = compiler.process(element.values, **kw)
    return f"{compiler.process(element.column, **kw)} IN (SELECT value FROM json_each({values}))"


@compiles(among, "postgresql")
def _among_any(element: among, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{compiler.process(element.column, **kw)} = ANY({compiler.process(element.values, **kw)})"


class unindexed(ColumnElement[Any]):
    """`column`, which SQLite is not to look up by its index here (SQLite's unary +; the column as it is
    elsewhere). Without statistics SQLite's planner prefers an index on a column compared with a constant
    (`status = 'sent'`) to one on a column compared with a batch's list of ids, and then walks every row
    of that status (every message sent, or pending) to find a batch's few hundred appointments."""

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]  # noqa: RUF012

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.column = column
        self.type = column.type


@compiles(unindexed)
def _column_as_is(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(unindexed, "sqlite")
def _column_not_by_index(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return f"+{compiler.process(element.column, **kw)}"


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

