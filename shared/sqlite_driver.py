"""SQLite through aiosqlite, each statement in one trip to the driver's thread.

aiosqlite runs the sqlite3 connection on a thread of its own; every call is a trip there and back
(a queue, a thread wake-up, a callback on the event loop). SQLAlchemy's adapter makes three or four
per statement: open a cursor, execute, fetch the rows, close the cursor. On this service's hot paths
(the dispatcher's claims and outcomes, the booking writer) those trips, not SQLite, were most of a
statement's cost: 0.3-0.4 ms of CPU, against about 0.06 ms for the same statement on the driver.

This DB-API module is SQLAlchemy's own aiosqlite adapter with one change: a cursor runs the statement,
reads its rows and closes the sqlite3 cursor in one function, sent to the driver's thread once. It is
given to `create_async_engine(module=...)`, SQLAlchemy's documented way to supply a DB-API module; the
dialect, the pool and everything else are SQLAlchemy's. It reaches aiosqlite's connection internals
(`_execute`, `_conn`), as SQLAlchemy's adapter does: both libraries are pinned, and the whole test suite
runs on it.

It also lets one connection of the process write at a time (`WriteGate`). SQLite has one write lock per
database; a connection that finds it taken waits in SQLite's busy handler, which sleeps 1, 2, 5, 10, 15,
20, 25 ... 100 ms between tries, however soon the lock is free. Two of a service's own connections
meeting there (the booking writer and the outbox relay marking what it published, the dispatcher's
claims and its outcomes) cost the loser those sleeps: at 100 bookings a second, about 800 of them in
20 s (bench/README.md). A connection about to write now waits its turn on the event
loop instead, woken as soon as the writer before it commits or rolls back. Writers in other processes
are still SQLite's to arbitrate.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import re
import sqlite3
import weakref
from collections.abc import Awaitable, Callable, Sequence
from threading import Thread
from typing import Any, cast

import aiosqlite
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

_Outcome = tuple[Any, list[Any], int, int | None]  # description, rows, rowcount, lastrowid

# Statements that take SQLite's write lock (sqlite3 opens its transaction before the first DML statement).
_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|BEGIN\s+(IMMEDIATE|EXCLUSIVE)|VACUUM)\b",
                    re.IGNORECASE)
_WRITE_IN_CTE = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)  # SQLAlchemy hands over the same compiled statements again and again
def takes_write_lock(operation: str) -> bool:
    if _WRITE.match(operation):
        return True
    return operation.lstrip()[:4].upper() == "WITH" and _WRITE_IN_CTE.search(operation) is not None


class WriteGate:
    """One writing connection at a time among an engine's connections, in the order they asked.

    Waiting is bounded like SQLite's own (its busy timeout): past it, the statement fails with the error
    SQLite would have given, "database is locked".
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def enter(self) -> asyncio.Lock:
        """Wait for the gate; returns what to release once the transaction has ended."""
        lock = self._lock()
        try:
            async with asyncio.timeout(self.timeout_s):
                await lock.acquire()
        except TimeoutError:
            raise sqlite3.OperationalError("database is locked") from None
        return lock


def _execute(connection: sqlite3.Connection, operation: str, parameters: Any) -> _Outcome:
    cursor = connection.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _executemany(connection: sqlite3.Connection, operation: str, parameters: Sequence[Any]) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(operation, parameters)
        return cursor.description, [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statement, rows and close are one trip to the driver's thread."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        # No driver cursor is opened here: each statement opens and closes its own on the thread
        # (the base class's close() then has nothing to close).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]  # the base class types it as always open
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return 1  # sqlite3's default

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _async_soft_close(self) -> None:
        return  # the driver's cursor is closed already, on the thread

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._on_thread(_execute, operation, parameters))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            return await_(self._on_thread(_executemany, operation, seq_of_parameters))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _on_thread(self, function: Any, operation: Any, parameters: Any) -> None:
        driver = cast(aiosqlite.Connection, self._connection)
        on_thread: Callable[..., Awaitable[_Outcome]] = driver._execute
        connection = cast(OneTripConnection, self._adapt_connection)
        if connection._writing is None and takes_write_lock(operation):
            connection._writing = await connection.dbapi.write_gate.enter()
        try:
            async with connection._execute_mutex:
                outcome = await on_thread(function, driver._conn, operation, parameters)
        finally:
            connection._leave_gate_after_transaction()
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """Commit and rollback skip the trip when the driver has no transaction open: sqlite3 itself then
    does nothing (it checks the same flag on its side). The pool rolls back every connection handed back
    to it, after each commit and each read: that was a trip per transaction for nothing."""

    __slots__ = ("_writing",)
    _cursor_cls = OneTripCursor
    dbapi: OneTripDbapi

    def __init__(self, dbapi: OneTripDbapi, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._writing: asyncio.Lock | None = None  # the engine's write gate, held from the first write to the end

    def commit(self) -> None:
        self._end_transaction(super().commit)

    def rollback(self) -> None:
        self._end_transaction(super().rollback)

    def _end_transaction(self, end: Callable[[], None]) -> None:
        try:
            if self._in_transaction():
                end()
        finally:
            self._leave_gate_after_transaction()

    def close(self) -> None:
        try:
            super().close()  # a transaction still open is rolled back by SQLite
        finally:
            self._leave_gate_after_transaction(closed=True)

    def terminate(self) -> None:  # the pool's way to drop a connection it invalidated
        try:
            super().terminate()
        finally:
            self._leave_gate_after_transaction(closed=True)

    def _leave_gate_after_transaction(self, closed: bool = False) -> None:
        held = self._writing
        if held is not None and (closed or not self._in_transaction()):
            self._writing = None
            with contextlib.suppress(RuntimeError):  # dropped after its event loop closed: nobody waits
                held.release()

    def _in_transaction(self) -> bool:
        # Read on the event loop's thread while no statement of this connection is under way (SQLAlchemy
        # awaits each one), so the flag is the driver's settled state. A closed connection is left to
        # the base class.
        driver = self._connection._connection
        return driver is None or bool(driver.in_transaction)


class OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    def __init__(self, aiosqlite: Any, sqlite: Any, write_timeout_s: float = 30.0) -> None:
        super().__init__(aiosqlite, sqlite)
        self.write_gate = WriteGate(write_timeout_s)

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        creator_fn = kw.pop("async_creator_fn", None)
        connection = creator_fn(*arg, **kw) if creator_fn else self.aiosqlite.connect(*arg, **kw)
        if not creator_fn:
            thread = connection if isinstance(connection, Thread) else connection._thread
            thread.daemon = True  # as SQLAlchemy's adapter does: the thread must not keep a process alive
        return OneTripConnection(self, await_(connection))


def one_trip_dbapi(write_timeout_s: float = 30.0) -> OneTripDbapi:
    """A DB-API module for one engine: its connections share one write gate."""
    return OneTripDbapi(aiosqlite, sqlite3, write_timeout_s)
