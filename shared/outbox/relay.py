"""The outbox relay: publishes stored events to Kafka, in order per key, until acknowledged.

Every step survives a transient failure: taking the PostgreSQL advisory lock, reading and marking
rows, publishing. Each is retried with backoff until it succeeds or the relay is told to stop. A row
Kafka can never take (larger than the producer's limit, not serializable) is moved to the outbox's
dead table with the reason, so it never holds back the rows behind it.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.database import is_postgres
from shared.observability import OUTBOX_PUBLISH_FAILURES, OUTBOX_PUBLISHED
from shared.outbox.kafka_publisher import EventPublisher
from shared.outbox.store import Outbox, OutboxMessage
from shared.process import Worker

log = structlog.get_logger("outbox.relay")

OUTBOX_UNPUBLISHED = Gauge(
    "clinic_notify_outbox_unpublished", "Outbox events not yet acknowledged by Kafka", ["service"]
)
OUTBOX_OLDEST_AGE = Gauge(
    "clinic_notify_outbox_oldest_unpublished_age_seconds",
    "Age of the oldest outbox event not yet acknowledged by Kafka (0 when none)", ["service"],
)
OUTBOX_DEAD = Counter(
    "clinic_notify_outbox_dead_total", "Outbox events Kafka can never take, moved to the dead table", ["service"]
)
LOCK_CHECK_INTERVAL_S = 5.0


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


async def _driver(connection: AsyncConnection) -> Any:
    """The asyncpg connection under `connection`."""
    driver = (await connection.get_raw_connection()).driver_connection
    if driver is None:
        raise RuntimeError("the connection has no driver connection")
    return driver


class LockLost(Exception):
    """The connection holding the advisory lock broke: the lock is gone, it must be taken again."""


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
        backlog_interval_s: float = 1.0,
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
        self.backlog_interval_s = backlog_interval_s
        self.wakeup = asyncio.Event()
        self._backlog_exported_at = float("-inf")
        self._unpublished_shown = -1  # the backlog last exported (-1: none yet)
        self._read_all = False  # the last round read every pending row and left none behind

    def wake(self) -> None:
        """Called after an event is committed, so it goes out now rather than at the next poll."""
        self.wakeup.set()

    async def publish_pending(self) -> int:
        """One round; returns how many rows left the outbox (published or moved aside). Raises when
        some could not be sent."""
        self._read_all = False
        pending = await self.outbox.oldest_unpublished(self.engine, self.batch_size)
        batch = one_per_appointment(pending)
        if not batch:
            self._read_all = True
            return 0
        result = await self.publisher.publish(batch)
        now = self.clock()
        await self.outbox.mark_published(self.engine, result.acknowledged, now)
        OUTBOX_PUBLISHED.labels(self.service).inc(len(result.acknowledged))
        if result.unpublishable:
            await self.outbox.move_aside(self.engine, result.unpublishable, now)
            for outbox_id, reason in result.unpublishable.items():
                OUTBOX_DEAD.labels(self.service).inc()
                log.error("outbox_event_unpublishable_moved_aside", service=self.service, outbox_id=outbox_id,
                          reason=reason, table=self.outbox.dead.name)
        if result.error is not None:
            raise result.error
        gone = len(result.acknowledged) + len(result.unpublishable)
        # Fewer rows than asked for, each the only one of its key, all gone: nothing was left pending
        # at the read. Rows committed since then woke the relay (`wake`), which cleared before reading.
        self._read_all = len(pending) < self.batch_size and len(batch) == len(pending) == gone
        return gone

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Relay until `stop` is set (or the task is cancelled); every failure is retried with backoff."""
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                lock = await self._take_lock(stop)
                try:
                    if stop.is_set():
                        return
                    log.info("outbox_relay_started", service=self.service)
                    await self._relay_until(stop, lock)
                except LockLost as lost:
                    log.warning("outbox_relay_lock_lost", service=self.service, error=type(lost.__cause__).__name__)
                    await self._pause(stop, self.first_backoff_s)
                finally:
                    await self._release(lock)
        finally:
            await self.publisher.close()

    async def _relay_until(self, stop: asyncio.Event, lock: AsyncConnection | None) -> None:
        backoff = self.first_backoff_s
        lock_checked_at = time.monotonic()
        while not stop.is_set():
            self.wakeup.clear()  # before reading, so a wake during the round is not lost
            if lock is not None and time.monotonic() - lock_checked_at > LOCK_CHECK_INTERVAL_S:
                await self._check_lock(lock)
                lock_checked_at = time.monotonic()
            try:
                published = await self.publish_pending()
            except Exception as error:
                OUTBOX_PUBLISH_FAILURES.labels(self.service).inc()
                # Kafka errors name brokers and topics; other errors (SQL) may carry row data.
                detail = str(error)[:300] if isinstance(error, KafkaError) else None
                log.warning(
                    "outbox_publish_failed",
                    service=self.service,
                    error=type(error).__name__,
                    detail=detail,
                    retry_in_s=backoff,
                )
                await self._export_backlog(force=False)
                await self._pause(stop, backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            if backoff != self.first_backoff_s:
                log.info("outbox_publish_recovered", service=self.service)
                backoff = self.first_backoff_s
            # Drained: the backlog is shown at once unless it already shows none.
            await self._export_backlog(force=self._read_all and self._unpublished_shown != 0)
            if self._read_all or published == 0:  # nothing to read before the next wake or poll
                await self._pause(stop, self.poll_interval_s, self.wakeup)

    async def _take_lock(self, stop: asyncio.Event) -> AsyncConnection | None:
        """On PostgreSQL several instances may run: only the advisory-lock holder relays, so two relays
        never race on the same rows. SQLite means one process, nothing to elect. Returns the connection
        holding the lock (None on SQLite, or when told to stop first)."""
        if not is_postgres(self.engine):
            return None
        lock = text("SELECT pg_try_advisory_lock(:key)").bindparams(key=advisory_lock_key(self.outbox.table.name))
        backoff = self.first_backoff_s
        while not stop.is_set():
            connection: AsyncConnection | None = None
            try:
                connection = await self.engine.connect()
                locked = (await connection.execute(lock)).scalar_one()
                await connection.commit()
                if locked:
                    await self._listen(connection)
                    return connection
                wait = self.poll_interval_s * 5  # another instance relays
            except Exception as error:
                log.warning("outbox_relay_lock_unavailable", service=self.service, error=type(error).__name__,
                            retry_in_s=backoff)
                wait, backoff = backoff, min(backoff * 2, self.max_backoff_s)
            if connection is not None:
                with contextlib.suppress(Exception):  # broken or not holding the lock: discard it
                    await connection.close()
            await self._pause(stop, wait)
        return None

    async def _listen(self, lock: AsyncConnection) -> None:
        """Events stored by other instances wake this relay too: every insert into the outbox notifies
        the channel named after it (`insert_notification_ddl`). Without it they wait for the next poll."""
        try:
            await (await _driver(lock)).add_listener(self.outbox.table.name, self._notified)
        except Exception as error:
            log.warning("outbox_relay_not_listening", service=self.service, error=type(error).__name__,
                        poll_interval_s=self.poll_interval_s)

    def _notified(self, *_: object) -> None:
        self.wake()

    @staticmethod
    async def _check_lock(lock: AsyncConnection) -> None:
        try:
            await lock.execute(text("SELECT 1"))
            await lock.commit()
        except Exception as error:
            raise LockLost() from error

    async def _release(self, lock: AsyncConnection | None) -> None:
        if lock is None:
            return
        unlock = text("SELECT pg_advisory_unlock(:key)").bindparams(key=advisory_lock_key(self.outbox.table.name))
        with contextlib.suppress(Exception):  # the connection goes back to the pool: it stops listening
            await (await _driver(lock)).remove_listener(self.outbox.table.name, self._notified)
        with contextlib.suppress(Exception):  # a broken connection holds no lock any more
            await lock.execute(unlock)
            await lock.commit()
        with contextlib.suppress(Exception):
            await lock.close()

    async def _export_backlog(self, *, force: bool) -> None:
        if not force and time.monotonic() - self._backlog_exported_at < self.backlog_interval_s:
            return
        try:
            backlog = await self.outbox.backlog(self.engine)
        except Exception as error:  # the database is away: the next round tries again
            log.debug("outbox_backlog_unavailable", error=type(error).__name__)
            return
        self._backlog_exported_at = time.monotonic()
        self._unpublished_shown = backlog.unpublished
        OUTBOX_UNPUBLISHED.labels(self.service).set(backlog.unpublished)
        oldest = backlog.oldest_created_at
        OUTBOX_OLDEST_AGE.labels(self.service).set(
            max((self.clock() - oldest).total_seconds(), 0.0) if oldest is not None else 0.0)

    @staticmethod
    async def _pause(stop: asyncio.Event, seconds: float, wakeup: asyncio.Event | None = None) -> None:
        """Sleep `seconds`, or less if told to stop (or woken)."""
        events = [stop] if wakeup is None else [stop, wakeup]
        waiters = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


def outbox_relay_worker(relay: OutboxRelay) -> Worker:
    """The relay as a service worker: it runs until the service stops, surviving every failure."""
    return Worker("outbox-relay", relay.run)
