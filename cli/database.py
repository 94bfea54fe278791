"""`clinic-notify db`: each service's schema migrations (Alembic).

- `db upgrade --service S [--url URL]`: bring the database to the newest revision, as the service
  does at start-up (a database made before migrations is stamped at its baseline first).
- `db check --service S [--url URL]`: does the database's schema equal what the service's code defines?
- `db revision --service S -m "what changes"`: write the next revision from the difference between
  the service's tables and a scratch SQLite database upgraded to the current head; review it by hand.

The URL defaults to the service's own setting (NOTIFIER_, AFTERCARE_ or BOOKING_DATABASE_URL).
"""
from __future__ import annotations

import asyncio
import importlib.util
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from alembic import command
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.output import UNAVAILABLE, fail, stdout
from services.aftercare import tables as aftercare_tables
from services.aftercare.migrations import MIGRATIONS as AFTERCARE
from services.aftercare.settings import AftercareSettings
from services.booking_events import tables as booking_tables
from services.booking_events.migrations import MIGRATIONS as BOOKING
from services.booking_events.settings import BookingSettings
from services.notifier import tables as notifier_tables
from services.notifier.migrations import MIGRATIONS as NOTIFIER
from services.notifier.settings import NotifierSettings
from shared.database import create_engine
from shared.schema_migrations import Migrations, describe, schema_differences, upgrade_to_head

T = TypeVar("T")


class Service(StrEnum):
    notifier = "notifier"
    aftercare = "aftercare"
    booking_events = "booking_events"


@dataclass(frozen=True)
class ServiceSchema:
    migrations: Migrations
    schema: MetaData
    url_variable: str
    default_url: str


SCHEMAS = {
    Service.notifier: ServiceSchema(NOTIFIER, notifier_tables.SCHEMA, "NOTIFIER_DATABASE_URL",
                                    NotifierSettings.model_fields["database_url"].default),
    Service.aftercare: ServiceSchema(AFTERCARE, aftercare_tables.SCHEMA, "AFTERCARE_DATABASE_URL",
                                     AftercareSettings.model_fields["database_url"].default),
    Service.booking_events: ServiceSchema(BOOKING, booking_tables.SCHEMA, "BOOKING_DATABASE_URL",
                                          BookingSettings.model_fields["database_url"].default),
}

ServiceOption = Annotated[Service, typer.Option("--service", help="Whose database.")]
UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="SQLAlchemy URL of the database; default: the service's *_DATABASE_URL setting."),
]


def register(app: typer.Typer) -> None:
    db = typer.Typer(name="db", help="Schema migrations of each service's database.", no_args_is_help=True)
    db.command("upgrade")(upgrade)
    db.command("check")(check)
    db.command("revision")(revision)
    app.add_typer(db)


def upgrade(service: ServiceOption, url: UrlOption = None) -> None:
    """Upgrade the service's database to the newest revision (what the service does at start-up)."""
    chosen = SCHEMAS[service]
    _on_database(_url(chosen, url), lambda engine: upgrade_to_head(engine, chosen.migrations))
    stdout().print(f"{service} database at revision {chosen.migrations.head()}")


def check(service: ServiceOption, url: UrlOption = None) -> None:
    """Exit 1 when the database's schema differs from the service's tables, listing the differences."""
    chosen = SCHEMAS[service]
    differences = _on_database(_url(chosen, url), lambda engine: _differences(engine, chosen))
    if differences:
        fail(f"the {service} database differs from the service's tables:\n" + "\n".join(describe(differences)))
    stdout().print(f"{service} database matches the service's tables")


def revision(
    service: ServiceOption,
    message: Annotated[str, typer.Option("-m", "--message", help="What the revision changes.")],
) -> None:
    """Write the next revision of the service's schema, generated from its tables; review it by hand."""
    chosen = SCHEMAS[service]
    with tempfile.TemporaryDirectory() as scratch:
        path = _on_database(f"sqlite+aiosqlite:///{scratch}/head.db", lambda engine: _revise(engine, chosen, message))
    if path is None:
        stdout().print(f"{service}: the tables equal the head revision, nothing to write")
        return
    stdout().print(f"wrote {path}: review it (batch operations for SQLite, data to carry over) before committing")


def _url(chosen: ServiceSchema, url: str | None) -> str:
    return url or os.environ.get(chosen.url_variable) or chosen.default_url


def _on_database(url: str, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except OSError as error:
        fail(f"the database could not be reached: {error}", UNAVAILABLE)


async def _differences(engine: AsyncEngine, chosen: ServiceSchema) -> list[Any]:
    async with engine.connect() as connection:
        return await connection.run_sync(schema_differences, chosen.migrations, chosen.schema)


async def _revise(engine: AsyncEngine, chosen: ServiceSchema, message: str) -> Path | None:
    await upgrade_to_head(engine, chosen.migrations)
    if not await _differences(engine, chosen):
        return None
    async with engine.connect() as connection:
        return await connection.run_sync(_write_revision, chosen.migrations, message)


def _write_revision(connection: Connection, migrations: Migrations, message: str) -> Path:
    config = migrations.config(connection)
    if importlib.util.find_spec("ruff") is not None:  # the project's formatting and import order
        config.set_section_option("post_write_hooks", "hooks", "ruff_format, ruff_fix")
        for hook, options in (("ruff_format", "format"), ("ruff_fix", "check --fix --quiet")):
            config.set_section_option("post_write_hooks", f"{hook}.type", "module")
            config.set_section_option("post_write_hooks", f"{hook}.module", "ruff")
            config.set_section_option("post_write_hooks", f"{hook}.options", f"{options} REVISION_SCRIPT_FILENAME")
    written = command.revision(config, message=message, autogenerate=True, rev_id=f"{int(migrations.head()) + 1:04d}")
    if written is None or isinstance(written, list):
        raise RuntimeError("Alembic wrote no single revision")
    return Path(written.path)
