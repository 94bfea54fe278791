"""Addresses that must not be messaged on a channel: opted out by STOP or an unsubscribe link."""
from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import ColumnElement, Exists, Select, bindparam, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.database import insert_ignoring_duplicates
from shared.events.aftercare import ConsentChanged
from shared.ledger.tables import email_suppressions, sms_suppressions

_TABLES = {"sms": (sms_suppressions, "phone"), "email": (email_suppressions, "email")}


class SuppressionList:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def suppress(self, channel: str, address: str, source: str, now: datetime,
                       connection: AsyncConnection | None = None) -> None:
        table, column = _TABLES[channel]
        statement = insert_ignoring_duplicates(self.engine.dialect.name, table).values(
            {column: normalise(channel, address), "opted_out_at": now, "source": source}
        )
        async with _in_transaction(self.engine, connection) as active:
            await active.execute(statement)

    async def lift(self, channel: str, address: str, connection: AsyncConnection | None = None) -> None:
        table, column = _TABLES[channel]
        async with _in_transaction(self.engine, connection) as active:
            await active.execute(delete(table).where(table.c[column] == normalise(channel, address)))

    async def is_suppressed(self, channel: str, address: str) -> bool:
        table, column = _TABLES[channel]
        async with self.engine.connect() as connection:
            found = await connection.scalar(
                select(table.c[column]).where(table.c[column] == normalise(channel, address))
            )
        return found is not None


def opted_out(channel: str, address: ColumnElement[str]) -> Exists:
    """The SQL condition "`address` (normalised: `normalise`) opted out of `channel`", for a statement
    of the caller's."""
    table, column = _TABLES[channel]
    return exists().where(table.c[column] == address)


@functools.cache
def opted_out_among(channel: str) -> Select[tuple[str]]:
    """Which of the (normalised) `addresses` given as a parameter opted out of `channel`."""
    table, column = _TABLES[channel]
    return select(table.c[column]).where(table.c[column].in_(bindparam("addresses", expanding=True)))


@asynccontextmanager
async def _in_transaction(engine: AsyncEngine, connection: AsyncConnection | None) -> AsyncIterator[AsyncConnection]:
    """The caller's transaction when it has one, else a transaction of our own."""
    if connection is not None:
        yield connection
        return
    async with engine.begin() as own:
        yield own


def normalise(channel: str, address: str) -> str:
    """An address as the list keeps it."""
    return address.strip().lower() if channel == "email" else address.strip()


async def apply_consent_change(suppressions: SuppressionList, change: ConsentChanged) -> None:
    """Mirror a consent change published by another service."""
    if change.subscribed:
        await suppressions.lift(change.channel, change.address)
    else:
        await suppressions.suppress(change.channel, change.address, change.source, change.occurred_at)
