"""Schema migrations: each service's Alembic revisions, run at start-up and by `clinic-notify db`.

A service keeps its revisions in `services/<name>/migrations/` and its own version table
(`alembic_version_<service>`): services sharing one database would not mix up their histories (the
notifier and aftercare still need a database each, as both have a `deliveries` table).
`upgrade_to_head` is what a service calls before it serves:

- on PostgreSQL it first takes a transaction-scoped advisory lock: instances that start together
  upgrade one after the other, the later ones finding the schema already at head;
- a database made by `create_all` before migrations existed (the service's baseline tables, no
  version table) is stamped at the baseline revision, then upgraded like any other;
- the whole upgrade runs in one transaction (on PostgreSQL DDL is transactional: a failed upgrade
  leaves the schema as it was).

Tables a database holds that the service no longer defines are left alone: an upgrade never drops
data it was not written to drop.
"""
from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command, context, op
from alembic.autogenerate import compare_metadata
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Index, MetaData, Table, UniqueConstraint, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.database import UtcDateTime, create_engine
from shared.observability import get_logger
from shared.outbox.store import drop_insert_notification_ddl, insert_notification_ddl

log = get_logger(__name__)


@dataclass(frozen=True)
class Migrations:
    """Where a service's revisions live and what its database held before there were any."""

    service: str
    script_location: Path
    # The revision that creates the schema `create_all` made before migrations, and that schema's tables.
    baseline: str
    baseline_tables: frozenset[str]

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.service}"

    @property
    def lock_key(self) -> int:
        """The PostgreSQL advisory lock this service's upgrades take (a signed 64-bit key)."""
        digest = hashlib.sha256(f"clinic-notify schema {self.service}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def config(self, connection: Connection | None = None) -> Config:
        """An Alembic configuration with no ini file; revisions run on `connection` when given."""
        config = Config()
        config.set_main_option("script_location", str(self.script_location))
        # v0001_baseline.py: revisions are numbered, and named so that mypy and setuptools accept them.
        config.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
        config.set_main_option("truncate_slug_length", "60")
        config.attributes["connection"] = connection
        return config

    def head(self) -> str:
        head = ScriptDirectory.from_config(self.config()).get_current_head()
        if head is None:
            raise RuntimeError(f"{self.service} has no migration revision")
        return head


async def upgrade_to_head(engine: AsyncEngine, migrations: Migrations) -> None:
    """Bring the service's database to its newest revision (see the module docstring)."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Released when this transaction ends: the next instance then finds the schema at head.
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": migrations.lock_key})
        await connection.run_sync(_upgrade, migrations)


def _upgrade(connection: Connection, migrations: Migrations) -> None:
    config = migrations.config(connection)
    tables = set(inspect(connection).get_table_names())
    if migrations.version_table not in tables:
        present = migrations.baseline_tables & tables
        if present == migrations.baseline_tables:
            command.stamp(config, migrations.baseline)
            log.info("schema_adopted", service=migrations.service, revision=migrations.baseline,
                     reason="tables made before migrations, no version table")
        elif present:
            missing = sorted(migrations.baseline_tables - present)
            raise RuntimeError(
                f"the {migrations.service} database has some of its tables but no {migrations.version_table} "
                f"table, and lacks {missing}: not a schema this version knows how to upgrade"
            )
    before = MigrationContext.configure(connection, opts={"version_table": migrations.version_table})
    current = before.get_current_revision()
    command.upgrade(config, "head")
    head = migrations.head()
    if current != head:
        log.info("schema_upgraded", service=migrations.service, from_revision=current, to_revision=head)


def schema_differences(connection: Connection, migrations: Migrations, metadata: MetaData) -> list[Any]:
    """What the database's schema lacks or has beyond `metadata`, as autogenerate sees it with the
    options of the migration environment: empty when they agree (`alembic check`)."""
    migration = MigrationContext.configure(
        connection, opts={"compare_type": True, "version_table": migrations.version_table}
    )
    return list(compare_metadata(migration, metadata))


def describe(differences: list[Any]) -> list[str]:
    """One line per difference, e.g. `add_column deliveries.claim_token`, `add_table aftercare_screenings`."""
    lines = []
    for difference in differences:
        steps = difference if isinstance(difference, list) else [difference]
        for kind, *details in steps:
            lines.append(f"{kind} {_name_of(details)}")
    return lines


def _name_of(details: list[Any]) -> str:
    for detail in details:
        if isinstance(detail, Table | Index | UniqueConstraint):
            return str(detail.name)
        if isinstance(detail, Column):
            return f"{detail.table.name}.{detail.name}" if detail.table is not None else str(detail.name)
    table, column = (details[1], details[2]) if len(details) > 2 else (None, None)
    return f"{table}.{column}" if isinstance(table, str) and isinstance(column, str) else repr(details)


def run_environment(migrations: Migrations, metadata: MetaData) -> None:
    """The body of a service's `env.py`: run Alembic's command on the connection it was given, or
    on an async engine of its own made from `sqlalchemy.url` (the `alembic` command line)."""
    options: dict[str, Any] = {
        "target_metadata": metadata,
        "version_table": migrations.version_table,
        "render_as_batch": True,  # SQLite cannot alter most things in place: rebuild the table
        "compare_type": True,
        "render_item": _render_item,
    }
    config = context.config
    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection, options)
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("no connection given and no sqlalchemy.url set")
    asyncio.run(_run_on_new_engine(url, options))


def _run_on(connection: Connection, options: dict[str, Any]) -> None:
    context.configure(connection=connection, **options)
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_new_engine(url: str, options: dict[str, Any]) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_on, options)
            await connection.commit()
    finally:
        await engine.dispose()


def _render_item(kind: str, item: object, autogen_context: AutogenContext) -> str | bool:
    """Revisions import the project's own column types by name."""
    if kind == "type" and isinstance(item, UtcDateTime):
        autogen_context.imports.add("from shared.database import UtcDateTime")
        return "UtcDateTime()"
    return False


class _BatchIfMissing:
    """A batch of one table's changes that skips the columns and indexes the table already has."""

    def __init__(self, batch: Any, columns: set[str], indexes: set[str | None]) -> None:
        self._batch = batch
        self._columns = columns
        self._indexes = indexes

    def add_column(self, column: Column[Any], **options: Any) -> None:
        if column.name not in self._columns:
            self._batch.add_column(column, **options)

    def create_index(self, name: str, *args: Any, **options: Any) -> None:
        if name not in self._indexes:
            self._batch.create_index(name, *args, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)


class OperationsIfMissing:
    """Alembic's `op` for the revision that adopts databases made by `create_all` before migrations:
    such a database may come from any version in between, so a table, column or index it already has
    is not created again. Use it as `from shared.schema_migrations import if_missing as op`."""

    def create_table(self, name: str, *columns: Any, **options: Any) -> None:
        if not inspect(context.get_bind()).has_table(name):
            op.create_table(name, *columns, **options)

    def create_index(self, name: str, table: str, *args: Any, **options: Any) -> None:
        if name not in {index["name"] for index in inspect(context.get_bind()).get_indexes(table)}:
            op.create_index(name, table, *args, **options)

    @contextmanager
    def batch_alter_table(self, table: str, **options: Any) -> Iterator[Any]:
        inspector = inspect(context.get_bind())
        columns = {column["name"] for column in inspector.get_columns(table)}
        indexes = {index["name"] for index in inspector.get_indexes(table)}
        with op.batch_alter_table(table, **options) as batch:
            yield _BatchIfMissing(batch, columns, indexes)

    def __getattr__(self, name: str) -> Any:
        return getattr(op, name)


if_missing = OperationsIfMissing()


def replace_index(table: str, old: str, new: str, columns: list[str]) -> None:
    """In a revision: index `table` by `new` on `columns` instead of `old`, taking only the steps still to
    be taken (a database made by `create_all` of a later version has `new` and not `old` already)."""
    present = {index["name"] for index in inspect(op.get_bind()).get_indexes(table)}
    with op.batch_alter_table(table, schema=None) as batch_op:
        if new not in present:
            batch_op.create_index(new, columns, unique=False)
        if old in present:
            batch_op.drop_index(old)


def notify_on_outbox_insert(table: str) -> None:
    """In a revision, on PostgreSQL: inserts into the outbox `table` notify the relay (see
    `shared.outbox.store.insert_notification_ddl`); each step may have been taken already."""
    if op.get_bind().dialect.name == "postgresql":
        for statement in insert_notification_ddl(table):
            op.execute(statement)


def stop_notifying_on_outbox_insert(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(drop_insert_notification_ddl(table))
