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


async def _without_sqlite_waiting(connection: Any) -> None:
    """SQLite's own busy handler off: a connection that finds the write lock taken fails at once."""
    await connection.exec_driver_sql("PRAGMA busy_timeout=0")


async def test_a_second_writer_of_the_process_waits_its_turn_on_the_loop_not_in_sqlite(engine: AsyncEngine) -> None:
    import asyncio

    committed: list[str] = []

    async def first() -> None:
        async with engine.begin() as connection:
            await _without_sqlite_waiting(connection)
            await connection.execute(insert(patients).values(name="Alex", visits=1))
            await asyncio.sleep(0.05)  # holds SQLite's write lock meanwhile
        committed.append("first")

    async def second() -> None:
        await asyncio.sleep(0.01)
        async with engine.begin() as connection:
            await _without_sqlite_waiting(connection)
            await connection.execute(insert(patients).values(name="Sam", visits=1))
            assert committed == ["first"], "it wrote only once the first writer had committed"
        committed.append("second")

    await asyncio.gather(first(), second())

    assert committed == ["first", "second"]
    async with engine.connect() as connection:
        assert set((await connection.execute(select(patients.c.name))).scalars()) == {"Alex", "Sam"}


async def test_a_writer_that_fails_and_rolls_back_lets_the_next_one_in(engine: AsyncEngine) -> None:
    import asyncio

    async with engine.begin() as connection:
        await connection.execute(insert(patients).values(name="Alex", visits=1))

    async def duplicate() -> None:
        async with engine.begin() as connection:
            await connection.execute(insert(patients).values(name="Kim", visits=1))
            await asyncio.sleep(0.02)
            await connection.execute(insert(patients).values(name="Alex", visits=2))

    async def other() -> None:
        await asyncio.sleep(0.01)
        async with engine.begin() as connection:
            await _without_sqlite_waiting(connection)
            await connection.execute(insert(patients).values(name="Sam", visits=1))

    outcomes = await asyncio.gather(duplicate(), other(), return_exceptions=True)

    assert isinstance(outcomes[0], IntegrityError) and outcomes[1] is None
    async with engine.connect() as connection:
        assert set((await connection.execute(select(patients.c.name))).scalars()) == {"Alex", "Sam"}


async def test_a_read_does_not_wait_for_a_writer(engine: AsyncEngine) -> None:
    import asyncio

    holding = asyncio.Event()
    release = asyncio.Event()

    async def writer() -> None:
        async with engine.begin() as connection:
            await connection.execute(insert(patients).values(name="Alex", visits=1))
            holding.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await holding.wait()
    async with asyncio.timeout(5), engine.connect() as connection:
        assert (await connection.execute(select(func.count()).select_from(patients))).scalar_one() == 0
    release.set()
    await task


async def test_a_writer_kept_waiting_past_the_timeout_gets_sqlite_s_own_error(tmp_path: Path) -> None:
    import asyncio

    from sqlalchemy.exc import OperationalError
    from sqlalchemy.ext.asyncio import create_async_engine

    from shared.sqlite_driver import one_trip_dbapi

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}", module=one_trip_dbapi(0.2))
    await create_tables(engine, metadata)
    release = asyncio.Event()

    async def holder() -> None:
        async with engine.begin() as connection:
            await connection.execute(insert(patients).values(name="Alex", visits=1))
            await release.wait()

    task = asyncio.create_task(holder())
    await asyncio.sleep(0.05)
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            async with engine.begin() as connection:
                await connection.execute(insert(patients).values(name="Sam", visits=1))
    finally:
        release.set()
        await task
    async with engine.begin() as connection:  # the gate is free again once the holder committed
        await connection.execute(insert(patients).values(name="Sam", visits=1))
    await engine.dispose()
