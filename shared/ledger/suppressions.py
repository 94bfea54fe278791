"""Addresses that must not be messaged on a channel: opted out by STOP or an unsubscribe link."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.database import insert_ignoring_duplicates
from shared.ledger.tables import email_suppressions, sms_suppressions

_TABLES = {"sms": (sms_suppressions, "phone"), "email": (email_suppressions, "email")}


class SuppressionList:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def suppress(self, channel: str, address: str, source: str, now: datetime) -> None:
        table, column = _TABLES[channel]
        statement = insert_ignoring_duplicates(self.engine.dialect.name, table).values(
            {column: _normalise(channel, address), "opted_out_at": now, "source": source}
        )
        async with self.engine.begin() as connection:
            await connection.execute(statement)

    async def lift(self, channel: str, address: str) -> None:
        table, column = _TABLES[channel]
        async with self.engine.begin() as connection:
            await connection.execute(
                delete(table).where(table.c[column] == _normalise(channel, address))
            )

    async def is_suppressed(self, channel: str, address: str) -> bool:
        table, column = _TABLES[channel]
        async with self.engine.connect() as connection:
            found = await connection.scalar(
                select(table.c[column]).where(table.c[column] == _normalise(channel, address))
            )
        return found is not None


def _normalise(channel: str, address: str) -> str:
    return address.strip().lower() if channel == "email" else address.strip()
