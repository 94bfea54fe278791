"""The SQLite engine: each statement is one trip to the driver's thread, and behaves as SQLAlchemy's."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.database import create_engine, create_tables

metadata = MetaData()
patients = Table("patients", metadata, Column("id", Integer, primary_key=True),
                 Column("name", String(50), unique=True), Column("visits", Integer, nullable=False))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
    await create_tables(engine, metadata)
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every call sent to a driver connection's thread."""
    sent: list[object] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, function: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(function)
        return await original(self, function, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return sent


async def test_each_statement_is_one_trip_to_the_drivers_thread_with_its_rows_and_counts(
    engine: AsyncEngine, trips: list[object]
) -> None:
    async with engine.begin() as connection:
        before = len(trips)
        inserted = await connection.execute(insert(patients).values(name="Maya", visits=1))
        assert len(trips) - before == 1
        assert inserted.inserted_primary_key is not None and inserted.inserted_primary_key[0] == 1

        before = len(trips)
        many = await connection.execute(insert(patients), [{"name": f"p{n}", "visits": n} for n in range(5)])
        assert len(trips) - before == 1
        assert many.rowcount == 5

        before = len(trips)
        changed = await connection.execute(update(patients).where(patients.c.visits < 3).values(visits=0))
        assert len(trips) - before == 1
        assert changed.rowcount == 4

        before = len(trips)
        rows = (await connection.execute(select(patients.c.name).order_by(patients.c.id))).scalars().all()
        assert len(trips) - before == 1
        assert rows == ["Maya", "p0", "p1", "p2", "p3", "p4"]


async def test_a_failed_statement_raises_sqlalchemys_error_and_rolls_back_nothing_else(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(patients).values(name="Maya", visits=1))
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(insert(patients).values(name="Sam", visits=1))
            await connection.execute(insert(patients).values(name="Maya", visits=2))
    async with engine.connect() as connection:
        assert (await connection.execute(select(func.count()).select_from(patients))).scalar_one() == 1


async def test_a_transaction_costs_its_statements_and_its_commit_and_nothing_when_handed_back(
    engine: AsyncEngine, trips: list[object]
) -> None:
    before = len(trips)
    async with engine.begin() as connection:
        await connection.execute(insert(patients).values(name="Maya", visits=1))
    assert len(trips) - before == 2  # the insert and the commit; the pool's reset has nothing to undo

    before = len(trips)
    async with engine.connect() as connection:
        assert (await connection.execute(select(func.count()).select_from(patients))).scalar_one() == 1
    assert len(trips) - before == 1  # a read opens no transaction: nothing to roll back


async def test_work_left_uncommitted_is_still_rolled_back_when_the_connection_is_handed_back(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as connection:
        await connection.execute(insert(patients).values(name="Maya", visits=1))
        # handed back without commit
    async with engine.connect() as connection:
        await connection.execute(insert(patients).values(name="Sam", visits=1))
        await connection.rollback()
    async with engine.connect() as connection:
        assert (await connection.execute(select(func.count()).select_from(patients))).scalar_one() == 0
