"""What a consumer makes of a record before any handler runs, and which failures it waits out."""
from __future__ import annotations

import json
import sqlite3
from typing import Any

import asyncpg
import pytest
from aiokafka import ConsumerRecord
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.consumer import Rejected, RetryableConflict, is_unavailable, read_event
from shared.events.appointment import AppointmentBooked, parse_appointment_event
from shared.topics import APPOINTMENTS
from tests.support.events import booked, in_hours

GOOD = booked("apt-1", in_hours(30)).model_dump_json().encode()


def record(value: bytes | None = GOOD, key: bytes | None = b"apt-1",
           headers: list[tuple[str, bytes | None]] | None = None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=APPOINTMENTS, partition=2, offset=41, timestamp=0, timestamp_type=0, key=key, value=value,
        checksum=None, serialized_key_size=0, serialized_value_size=0, headers=headers or [],
    )


def with_changes(**changes: Any) -> bytes:
    value = json.loads(GOOD)
    value.update(changes)
    return json.dumps(value).encode()


def test_a_good_record_is_its_event() -> None:
    event = read_event(record(headers=[("event_type", b"AppointmentBooked")]), parse_appointment_event)
    assert isinstance(event, AppointmentBooked) and event.appointment_id == "apt-1"


@pytest.mark.parametrize(("bad", "reason"), [
    (record(headers=[("event_type", b"\xff\xfe")]), "bad_header"),
    (record(headers=[("trace", None)]), "bad_header"),
    (record(key=None), "missing_key"),
    (record(key=b""), "missing_key"),
    (record(value=None), "missing_value"),
    (record(value=b"{" + b" " * 300_000 + b"}"), "oversized"),
    (record(value=b"\x00\xff garbage"), "not_json"),
    (record(value=b"{not json"), "not_json"),
    (record(value=b""), "not_json"),
    (record(value=with_changes(event_type="AppointmentTeleported")), "unknown_event_type"),
    (record(value=b'{"appointment_id": "apt-1"}'), "unknown_event_type"),
    (record(value=with_changes(sequence=0)), "validation_failed"),
])
def test_a_record_that_is_not_an_event_is_rejected_with_its_reason(
    bad: ConsumerRecord[bytes, bytes], reason: str
) -> None:
    rejected = read_event(bad, parse_appointment_event)
    assert isinstance(rejected, Rejected) and rejected.reason == reason and rejected.detail


def test_the_reason_never_quotes_the_record() -> None:
    rejected = read_event(record(value=with_changes(sequence="Alex Tremblay")), parse_appointment_event)
    assert isinstance(rejected, Rejected) and "Alex" not in rejected.detail


def wrapped(kind: type[Exception], driver_error: BaseException) -> Exception:
    return kind("INSERT ...", {}, driver_error)


@pytest.mark.parametrize("error", [
    wrapped(OperationalError, sqlite3.OperationalError("database is locked")),
    wrapped(InterfaceError, Exception("connection is closed")),
    wrapped(OperationalError, asyncpg.exceptions.AdminShutdownError("terminating connection")),
    wrapped(InterfaceError, asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")),
    wrapped(OperationalError, asyncpg.exceptions.CannotConnectNowError("the database system is starting up")),
    wrapped(OperationalError, asyncpg.exceptions.DeadlockDetectedError("deadlock detected")),
    PoolTimeout("QueuePool limit reached"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError(),
    RetryableConflict("apt-1"),
])
def test_what_comes_back_is_waited_out(error: Exception) -> None:
    assert is_unavailable(error)


def sqlite_error(statement: str) -> BaseException:
    """A real error of SQLite's (it names its own error code)."""
    try:
        sqlite3.connect(":memory:").execute(statement)
    except sqlite3.Error as error:
        return error
    raise AssertionError(f"{statement} did not fail")


def out_of_range() -> Exception:
    """What SQLAlchemy raises for asyncpg's refusal of an int beyond the int32 column."""
    try:
        raise asyncpg.exceptions.DataError("invalid input for query argument $1: 3000000000")
    except asyncpg.exceptions.DataError as driver_error:
        return wrapped(InterfaceError, driver_error)


@pytest.mark.parametrize("error", [
    out_of_range(),
    wrapped(DataError, asyncpg.exceptions.NumericValueOutOfRangeError("integer out of range")),
    wrapped(IntegrityError, asyncpg.exceptions.UniqueViolationError("duplicate key")),
    wrapped(ProgrammingError, asyncpg.exceptions.UndefinedTableError("no such table")),
    wrapped(OperationalError, sqlite_error("SELECT * FROM appointments")),
    OverflowError("Python int too large to convert to SQLite INTEGER"),
    KeyError("a defect"),
])
def test_a_defect_is_not_waited_out(error: Exception) -> None:
    assert not is_unavailable(error)
