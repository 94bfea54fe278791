"""The outbox relay: publishes stored events to Kafka, in order per key, until acknowledged."""
from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

import structlog
from aiokafka.errors import KafkaError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.database import is_postgres
from shared.observability import OUTBOX_PUBLISH_FAILURES, OUTBOX_PUBLISHED
from shared.outbox.kafka_publisher import EventPublisher
from shared.outbox.store import Outbox, OutboxMessage

log = structlog.get_logger("outbox.relay")



def advisory_lock_key(table_name: str) -> int:
    """The same for every instance relaying this outbox table: only the holder relays."""
    return zlib.crc32(table_name.encode())


def utc_now() -> datetime:
    return datetime.now(UTC)


def one_per_appointment(messages: Sequence[OutboxMessage]) -> list[OutboxMessage]:
    """The oldest message of each key: a later event of an appointment waits for the earlier one's ack,
    so a failure can never let it overtake (the idempotent producer alone does not survive a restart)."""
    seen: set[str] = set()
    chosen = []
    for message in messages:
        if message.key not in seen:
            seen.add(message.key)
            chosen.append(message)
    return chosen


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        outbox: Outbox,
        publisher: EventPublisher,
        *,
        clock: Callable[[], datetime] = utc_now,
        service: str = "clinic-notify",
        batch_size: int = 200,
        poll_interval_s: float = 1.0,
        first_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.engine = engine
        self.publisher = publisher
        self.clock = clock
        self.outbox = outbox
        self.service = service
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.wakeup = asyncio.Event()

    def wake(self) -> None:
        """Called after an event is committed, so it goes out now rather than at the next poll."""
        self.wakeup.set()

    async def publish_pending(self) -> int:
        """One round; returns how many events Kafka acknowledged. Raises when some could not be sent."""
        batch = one_per_appointment(await self.outbox.oldest_unpublished(self.engine, self.batch_size))
        if not batch:
            return 0
        result = await self.publisher.publish(batch)
        await self.outbox.mark_published(self.engine, result.acknowledged, self.clock())
        OUTBOX_PUBLISHED.labels(self.service).inc(len(result.acknowledged))
        if result.error is not None:
            raise result.error
        return len(result.acknowledged)

    async def run(self) -> None:
        """Relay until cancelled; failures are retried with backoff, never skipped."""
        async with self._sole_relay():
            log.info("outbox_relay_started")
            try:
                await self._relay_forever()
            finally:
                await self.publisher.close()

    async def _relay_forever(self) -> None:
        backoff = self.first_backoff_s
        while True:
            self.wakeup.clear()  # before reading, so a wake during the round is not lost
            try:
                published = await self.publish_pending()
            except Exception as error:
                OUTBOX_PUBLISH_FAILURES.labels(self.service).inc()
                # Kafka errors name brokers and topics; other errors (SQL) may carry row data.
                detail = str(error)[:300] if isinstance(error, KafkaError) else None
                log.warning(
                    "outbox_publish_failed",
                    error=type(error).__name__,
                    detail=detail,
                    retry_in_s=backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            if backoff != self.first_backoff_s:
                log.info("outbox_publish_recovered")
                backoff = self.first_backoff_s
            if published == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), self.poll_interval_s)

    @contextlib.asynccontextmanager
    async def _sole_relay(self) -> AsyncIterator[None]:
        """On PostgreSQL several instances may run: only the advisory-lock holder relays, so two
        relays never race on the same rows. SQLite means one process, nothing to elect."""
        if not is_postgres(self.engine):
            yield
            return
        async with self.engine.connect() as connection:
            lock = text("SELECT pg_try_advisory_lock(:key)").bindparams(key=advisory_lock_key(self.outbox.table.name))
            while not (await connection.execute(lock)).scalar_one():
                await connection.commit()
                await asyncio.sleep(self.poll_interval_s * 5)
            await connection.commit()
            try:
                yield
            finally:
                key = advisory_lock_key(self.outbox.table.name)
                unlock = text("SELECT pg_advisory_unlock(:key)").bindparams(key=key)
                with contextlib.suppress(Exception):
                    await connection.execute(unlock)
                    await connection.commit()
