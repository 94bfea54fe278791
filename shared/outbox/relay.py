"""The outbox relay: publishes stored events to Kafka, in order per appointment, until acknowledged."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

import structlog
from aiokafka.errors import KafkaError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking_events.kafka_publisher import EventPublisher
from services.booking_events.metrics import BookingMetrics
from services.booking_events.outbox import OutboxMessage, mark_published, oldest_unpublished
from shared.database import is_postgres

log = structlog.get_logger("booking_events.relay")

# Any constant shared by every instance of this service: only the holder relays.
RELAY_ADVISORY_LOCK = 0x626F6F6B  # "book"


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
        publisher: EventPublisher,
        *,
        clock: Callable[[], datetime] = utc_now,
        metrics: BookingMetrics | None = None,
        batch_size: int = 200,
        poll_interval_s: float = 1.0,
        first_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.engine = engine
        self.publisher = publisher
        self.clock = clock
        self.metrics = metrics
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
        batch = one_per_appointment(await oldest_unpublished(self.engine, self.batch_size))
        if not batch:
            return 0
        result = await self.publisher.publish(batch)
        await mark_published(self.engine, result.acknowledged, self.clock())
        if self.metrics is not None:
            self.metrics.published.inc(len(result.acknowledged))
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
                if self.metrics is not None:
                    self.metrics.publish_failures.inc()
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
            lock = text("SELECT pg_try_advisory_lock(:key)").bindparams(key=RELAY_ADVISORY_LOCK)
            while not (await connection.execute(lock)).scalar_one():
                await connection.commit()
                await asyncio.sleep(self.poll_interval_s * 5)
            await connection.commit()
            try:
                yield
            finally:
                unlock = text("SELECT pg_advisory_unlock(:key)").bindparams(key=RELAY_ADVISORY_LOCK)
                with contextlib.suppress(Exception):
                    await connection.execute(unlock)
                    await connection.commit()
