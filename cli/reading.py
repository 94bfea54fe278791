"""Reading a service's database or the clinic config for a command, failing with a clear message."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.output import UNAVAILABLE, fail
from shared.clinic_config import ClinicConfigError, load_clinic_config
from shared.database import create_engine

T = TypeVar("T")


def clinic_time_zone(path: Path) -> str:
    try:
        return load_clinic_config(path).clinic.time_zone
    except ClinicConfigError as error:
        fail(str(error))


def read_database(database_url: str, read: Callable[[AsyncEngine], Awaitable[T]], what: str) -> T:
    async def run() -> T:
        engine = create_engine(database_url)
        try:
            return await read(engine)
        finally:
            await engine.dispose()

    location = make_url(database_url)
    if location.drivername.startswith("sqlite") and location.database and not Path(location.database).exists():
        fail(f"no SQLite database at {location.database}", UNAVAILABLE)
    try:
        return asyncio.run(run())
    except (OperationalError, ProgrammingError, DBAPIError, OSError) as error:
        fail(f"cannot read {what}: {_first_line(error)}", UNAVAILABLE)


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]
