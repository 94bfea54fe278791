"""Recording a batch of intents in the ledger: one INSERT ... ON CONFLICT DO NOTHING for them all, an
intent already recorded (the unique key: appointment, step, channel, version) kept as it is.

On SQLite the rows go to the driver as one executemany of a statement compiled once, their values
already in the form SQLAlchemy binds them (each column's own bind processor), each distinct value
converted once a batch: a batch's rows share `now`, an event's rows share its context and often their
times. The driver counts the rows inserted (a duplicate ignored changes none). Converting every value of
every row through SQLAlchemy's processors cost more than SQLite's insert.

On PostgreSQL, Core's executemany with RETURNING (asyncpg reports no row count for an executemany).
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.database import insert_ignoring_duplicates
from shared.ledger.model import DeliveryIntent, DeliveryStatus
from shared.ledger.tables import deliveries

# The columns an intent fills, in the table's order; the others stay NULL until a dispatcher claims the row.
COLUMNS = (
    "id", "appointment_id", "step", "channel", "appointment_version", "template", "recipient", "locale",
    "context", "scheduled_for", "due_at", "expires_at", "status", "attempts", "fallback_recipient",
    "created_at", "updated_at",
)


def new_ids(count: int) -> list[str]:
    """`count` random (version 4) UUIDs, as text, from one read of the system's randomness: each is what
    `str(uuid.uuid4())` gives, its version and variant bits set here, without a UUID object each."""
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = bytes(byte & 0x0F | 0x40 for byte in raw[6::16])  # version 4
    raw[8::16] = bytes(byte & 0x3F | 0x80 for byte in raw[8::16])  # the RFC 4122 variant
    h = raw.hex()
    return [f"{h[i:i + 8]}-{h[i + 8:i + 12]}-{h[i + 12:i + 16]}-{h[i + 16:i + 20]}-{h[i + 20:i + 32]}"
            for i in range(0, 32 * count, 32)]


def _row(id_: str, intent: DeliveryIntent, now: datetime) -> tuple[Any, ...]:
    """A new intent's values, in the order of COLUMNS."""
    return (id_, intent.appointment_id, intent.step, intent.channel, intent.appointment_version, intent.template,
            intent.recipient, intent.locale, intent.context, intent.due_at, intent.due_at, intent.expires_at,
            DeliveryStatus.PENDING.value, 0, intent.fallback_recipient, now, now)


def rows_of(intents: Sequence[DeliveryIntent], now: datetime) -> list[dict[str, Any]]:
    """The ledger rows of new intents, as Core binds them."""
    return [dict(zip(COLUMNS, _row(id_, intent, now), strict=True))
            for id_, intent in zip(new_ids(len(intents)), intents, strict=True)]


async def record_intents(connection: AsyncConnection, intents: Sequence[DeliveryIntent], now: datetime) -> int:
    """Record `intents` in the caller's transaction; how many were new."""
    if not intents:
        return 0
    if connection.dialect.name != "sqlite":
        statement = insert_ignoring_duplicates(connection.dialect.name, deliveries).returning(deliveries.c.id)
        return len((await connection.execute(statement, rows_of(intents, now))).all())
    sql, bind = _sqlite_insert(connection.dialect)
    result = await connection.exec_driver_sql(sql, bind(intents, now))
    return int(result.rowcount)


Binder = Callable[[Sequence[DeliveryIntent], datetime], list[tuple[Any, ...]]]


@functools.cache
def _sqlite_insert(dialect: Dialect) -> tuple[str, Binder]:
    """The statement, compiled for `dialect`, and what turns intents into its rows of bound values."""
    compiled = insert_ignoring_duplicates("sqlite", deliveries).compile(dialect=dialect, column_keys=list(COLUMNS))
    if tuple(compiled.positiontup or ()) != COLUMNS:
        raise AssertionError(f"the ledger's insert binds {compiled.positiontup}, not {COLUMNS}")
    processors = {name: deliveries.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in COLUMNS}
    times = ("scheduled_for", "due_at", "expires_at", "created_at", "updated_at")
    as_time, as_json = processors["due_at"], processors["context"]
    if as_time is None or as_json is None or any(type(deliveries.c[name].type) is not type(deliveries.c.due_at.type)
                                                 for name in times):
        raise AssertionError("the ledger's times are not all bound as due_at is, or not converted")
    # Every other column is bound as it is.
    unconverted = sorted(name for name, processor in processors.items()
                         if processor is not None and name not in {"context", *times})
    if unconverted:
        raise AssertionError(f"the ledger's {unconverted} would need converting")
    context_at, time_at = COLUMNS.index("context"), [COLUMNS.index(name) for name in times]

    def bind(intents: Sequence[DeliveryIntent], now: datetime) -> list[tuple[Any, ...]]:
        as_stored: dict[datetime, Any] = {}  # a batch's rows share `now`, and often their times
        contexts: dict[int, Any] = {}  # by identity: an event's intents share their context
        rows = []
        for id_, intent in zip(new_ids(len(intents)), intents, strict=True):
            row = list(_row(id_, intent, now))
            for at in time_at:
                moment = row[at]
                if moment is not None:
                    stored = as_stored.get(moment)
                    row[at] = stored if stored is not None else as_stored.setdefault(moment, as_time(moment))
            key = id(intent.context)
            row[context_at] = contexts[key] if key in contexts else contexts.setdefault(key, as_json(intent.context))
            rows.append(tuple(row))
        return rows

    return str(compiled), bind
