"""Group commit: the units of work given while a transaction is being committed share the next one.

- One commit (one fsync on SQLite) serves every unit of the batch; each unit still reads and
  changes what it would alone, and learns its own result.
- A unit that fails does not fail the others: when a shared transaction fails, each of its units is
  run again in a transaction of its own, and only the failing one reports the failure.
- A unit that is one conditional UPDATE of one row (`RowUpdate`) is run, with the other units of
  the batch that have the same statement, as one `executemany` when the database reports how many
  rows that changed (SQLite): statements, not commits, are what cost most per message there (each
  is several round trips to the driver's thread). When not every row changed, the batch is run
  again unit by unit, so that each learns whether its own row changed. The rows such units insert
  when their row changed (`RowInsert`: an outcome's event in the outbox) go in one executemany per
  statement as well.
- While there is work, one connection serves every transaction; it goes back to the pool when there
  is none, or when a transaction on it failed.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Insert, Update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.observability import get_logger

T = TypeVar("T")
log = get_logger(__name__)
Work = Callable[[AsyncConnection], Awaitable[T]]


@dataclass(frozen=True)
class RowInsert:
    """A row to insert: `statement`, built once, with the row's `parameters`."""

    statement: Insert
    parameters: dict[str, Any]


@dataclass(frozen=True)
class RowUpdate(Generic[T]):
    """What a unit does, when it is one conditional UPDATE of one row then, if the row changed, `inserts`
    and `also`: `changed` is the unit's result then."""

    statement: Update
    parameters: dict[str, Any]
    changed: T
    also: Callable[[AsyncConnection], Awaitable[None]] | None = None
    inserts: tuple[RowInsert, ...] = ()


@dataclass(frozen=True)
class _Unit(Generic[T]):
    work: Work[T]
    row_update: RowUpdate[T] | None
    future: asyncio.Future[T]


class _NotEveryRowChanged(Exception):
    pass


class GroupCommit(Generic[T]):
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._merges = bool(engine.dialect.supports_sane_multi_rowcount)
        self._waiting: list[_Unit[T]] = []
        self._writer: asyncio.Task[None] | None = None
        self._connection: AsyncConnection | None = None

    async def run(self, work: Work[T], row_update: RowUpdate[T] | None = None) -> T:
        """`work`'s result, `work` run in a transaction shared with others; `row_update`: what
        `work` does, when it is a single-row UPDATE that may run together with others."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Unit(work, row_update, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        return await future

    async def _write_all(self) -> None:
        while self._waiting:  # work may have come while the connection was being released
            try:
                await self._write_while_waiting()
            finally:
                await self._release()

    async def _write_while_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = [unit for unit in self._waiting if not unit.future.cancelled()], []
            try:
                if len(batch) > 1:
                    try:
                        results = await self._transaction(batch)
                    except Exception:
                        for unit in batch:
                            await self._alone(unit)
                        continue
                    if not self._waiting:  # back in the pool before anyone learns that all is written
                        await self._release()
                    for unit, result in zip(batch, results, strict=True):
                        if not unit.future.done():
                            unit.future.set_result(result)
                elif batch:
                    await self._alone(batch[0])
            except BaseException:
                for unit in batch + self._waiting:
                    unit.future.cancel()
                raise

    async def _alone(self, unit: _Unit[T]) -> None:
        try:
            [result] = await self._transaction([unit], merge=False)
        except Exception as error:
            if not unit.future.done():
                unit.future.set_exception(error)
        else:
            if not self._waiting:
                await self._release()
            if not unit.future.done():
                unit.future.set_result(result)

    async def _transaction(self, units: list[_Unit[T]], merge: bool = True) -> list[T]:
        if self._connection is None:
            self._connection = await self.engine.connect()
        connection = self._connection
        try:
            async with connection.begin():
                return await self._run(connection, units, merge and self._merges)
        except BaseException:
            await self._release()
            raise

    async def _run(self, connection: AsyncConnection, units: list[_Unit[T]], merge: bool) -> list[T]:
        same: dict[Update, list[int]] = {}
        for index, unit in enumerate(units):
            if merge and unit.row_update is not None:
                same.setdefault(unit.row_update.statement, []).append(index)
        results: dict[int, T] = {}
        for index, unit in enumerate(units):
            if index in results:
                continue
            together = same.get(unit.row_update.statement, []) if unit.row_update is not None else []
            if len(together) < 2:
                results[index] = await unit.work(connection)
                continue
            updates = [row_update for i in together if (row_update := units[i].row_update) is not None]
            changed = await connection.execute(updates[0].statement, [update.parameters for update in updates])
            if changed.rowcount != len(updates):
                raise _NotEveryRowChanged()
            inserts: dict[Insert, list[dict[str, Any]]] = {}
            for update in updates:
                for row in update.inserts:
                    inserts.setdefault(row.statement, []).append(row.parameters)
            for statement, rows in inserts.items():
                await connection.execute(statement, rows)
            for i, update in zip(together, updates, strict=True):
                if update.also is not None:
                    await update.also(connection)
                results[i] = update.changed
        return [results[index] for index in range(len(units))]

    async def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            await asyncio.shield(connection.close())
        except Exception as error:
            # The transaction's outcome is known already; the pool replaces a connection it cannot close.
            log.warning("ledger_connection_not_closed", error_type=type(error).__name__)
