"""What the console's pages read: Kafka offsets, the services' databases. Nothing here writes."""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Generic, TypeVar

import phonenumbers
from aiokafka import TopicPartition
from sqlalchemy import Table, make_url, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.kafka_reading import admin_client, standalone_consumer
from services.aftercare import tables as aftercare_tables
from services.aftercare.views import EscalationRow, recent_escalations
from services.booking_events import tables as booking_tables
from services.notifier import tables as notifier_tables
from shared.database import create_engine
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.model import Delivery
from shared.ledger.tables import email_suppressions, sms_suppressions
from shared.outbox.store import Outbox, OutboxBacklog

T = TypeVar("T")
SERVICES = ("booking_events", "notifier", "aftercare")
OUTBOXES: dict[str, Table] = {"booking_events": booking_tables.outbox, "notifier": notifier_tables.outbox,
                              "aftercare": aftercare_tables.outbox}
LEDGERS = ("notifier", "aftercare")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: no offset committed there
    end: int

    @property
    def lag(self) -> int | None:
        return None if self.committed is None else max(0, self.end - self.committed)


class Unavailable(Exception):
    """A database that is not configured, not there, or does not answer."""


@dataclass(frozen=True)
class Reading(Generic[T]):
    """What one source answered, or why it could not."""

    value: T | None = None
    error: str | None = None


class Databases:
    """One read-only engine per configured service database, opened on first use."""

    def __init__(self, urls: dict[str, str | None]) -> None:
        self.urls = urls
        self._engines: dict[str, AsyncEngine] = {}

    def engine(self, service: str) -> AsyncEngine:
        url = self.urls.get(service)
        if not url:
            raise Unavailable(f"CONSOLE_{service.upper()}_DATABASE_URL is not set")
        location = make_url(url)
        # Opening a missing SQLite file would create an empty database: the console only reads.
        if location.drivername.startswith("sqlite") and location.database and not Path(location.database).exists():
            raise Unavailable(f"no SQLite database at {location.database}")
        if service not in self._engines:
            self._engines[service] = create_engine(url)
        return self._engines[service]

    async def read(self, service: str, query: Callable[[AsyncEngine], Awaitable[T]]) -> Reading[T]:
        try:
            return Reading(value=await query(self.engine(service)))
        except Unavailable as error:
            return Reading(error=str(error))
        except (DBAPIError, OSError) as error:
            return Reading(error=f"cannot read the {service} database: {(str(error).splitlines() or ['?'])[0]}")

    async def close(self) -> None:
        for engine in self._engines.values():
            await engine.dispose()
        self._engines.clear()


async def consumer_lags(bootstrap_servers: str) -> dict[str, list[PartitionLag]]:
    """Every consumer group the broker knows, with committed offset, end offset and lag per partition."""
    async with admin_client(bootstrap_servers) as admin:
        # "consumer": subscribed consumers; "": groups that only commit offsets (manual assignment).
        groups = sorted(group for group, protocol, *_ in await admin.list_consumer_groups()
                        if protocol in ("consumer", ""))
        committed = {group: await admin.list_consumer_group_offsets(group) for group in groups}
    partitions = sorted({tp for offsets in committed.values() for tp in offsets})
    ends: dict[TopicPartition, int] = {}
    if partitions:
        async with standalone_consumer(bootstrap_servers) as consumer:
            ends = await consumer.end_offsets(partitions)
    return {
        group: [
            PartitionLag(tp.topic, tp.partition, meta.offset if meta.offset >= 0 else None, ends[tp])
            for tp, meta in sorted(committed[group].items())
        ]
        for group in groups
    }


async def outbox_backlog(engine: AsyncEngine, service: str) -> OutboxBacklog:
    return await Outbox(OUTBOXES[service]).backlog(engine)


@dataclass(frozen=True)
class LedgerView:
    counts: dict[str, int]
    upcoming: list[Delivery]


async def ledger_view(engine: AsyncEngine, limit: int = 50) -> LedgerView:
    ledger = DeliveryLedger(engine)
    return LedgerView(await ledger.counts_by_status(), await ledger.upcoming(limit))


async def escalations(engine: AsyncEngine, limit: int = 50) -> list[EscalationRow]:
    return await recent_escalations(engine, None, limit)


@dataclass(frozen=True)
class Suppression:
    since: datetime
    source: str


def normalised_address(address: str) -> tuple[str, str]:
    """(channel, address as the suppression lists store it); ValueError when it is neither."""
    text = address.strip()
    if "@" in text:
        if not _EMAIL.fullmatch(text):
            raise ValueError("neither an email address nor a phone number")
        return "email", text.lower()
    try:
        number = phonenumbers.parse(text, "CA")
    except phonenumbers.NumberParseException as error:
        raise ValueError("neither an email address nor a phone number") from error
    if not phonenumbers.is_possible_number(number):
        raise ValueError("neither an email address nor a phone number")
    return "sms", phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


async def suppression(engine: AsyncEngine, channel: str, address: str) -> Suppression | None:
    table, column = (sms_suppressions, "phone") if channel == "sms" else (email_suppressions, "email")
    async with engine.connect() as connection:
        row = (await connection.execute(
            select(table.c.opted_out_at, table.c.source).where(table.c[column] == address))).first()
    return None if row is None else Suppression(row.opted_out_at, row.source)
