"""Events off Kafka in batches: read every record, hand the events to the service in one call, and only
then commit the batch's offsets, once.

Every record read ends applied or dead-lettered, never dropped:

- A record that cannot become an event (a header that is not UTF-8 or has no value, no key, no value,
  a value too large, not JSON, an unknown event type, a field out of its contract) goes to the
  dead-letter topic as it was read (key, value and headers byte for byte) with the reason in `dlq-*`
  headers. FastStream's own parser, which decodes every header before any handler runs, is replaced
  by one that never fails, so no record is lost before the consumer sees it.
- The events of a batch are applied in one call (one transaction); their order within a partition,
  and so per appointment, is the order they are handed over.
- When that fails because something is unavailable (`is_unavailable`: the database or the network
  down, a concurrent change), nothing is committed: the consumer rewinds to the batch's first records
  and tries again after a pause, for as long as it takes.
- Any other failure is a defect that retrying cannot fix: the batch is applied again event by event,
  so the bad event is found; it is tried a few times, then dead-lettered, and the others are applied.
- A dead letter that cannot be written is never skipped: nothing past it is committed, it is logged
  as an error and the record is read again after a pause.
- No call to the broker made here (a dead letter, an offset commit, a position) may wait without end:
  each is bounded by `kafka_call_timeout_seconds`, so a broker or client that stops answering shows
  as a logged failure and a retry, never as a consumer that silently stops reading.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage as ContextMessage
from faststream.kafka.message import FAKE_CONSUMER
from faststream.kafka.message import KafkaMessage as StreamMessage
from prometheus_client import Gauge
from pydantic import ValidationError
from sqlalchemy import exc as sql

from shared.events.appointment import parse_appointment_event
from shared.kafka_security import kafka_client_kwargs
from shared.observability import DEAD_LETTERS, EVENTS_CONSUMED, get_logger
from shared.settings import KafkaSettings
from shared.topics import APPOINTMENTS_DEAD_LETTER

log = get_logger(__name__)

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
BatchHandler = Callable[[list[Any]], Awaitable[object]]
MAX_EVENT_BYTES = 256 * 1024  # an appointment event is about 1 KiB


CONSUMER_LAG = Gauge(
    "clinic_notify_consumer_lag",
    "Records of a partition not yet consumed by the group: highwater minus position, after each batch",
    ["service", "group", "topic", "partition"],
)


class RetryableConflict(Exception):
    """A concurrent writer changed what this event needs; handling it again will succeed."""


# What a retry can outlast: the database or the network coming back, a concurrent writer finishing.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    sql.OperationalError, sql.InterfaceError, sql.TimeoutError, sql.DisconnectionError,
    OSError, TimeoutError, RetryableConflict,
)
# PostgreSQL error classes a retry outlasts: connection (08), transaction rollback: serialization,
# deadlock (40), insufficient resources (53), operator intervention: shutdown, starting up (57),
# lock not available (55P03).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57")
_TRANSIENT_SQLSTATES = frozenset({"55P03"})
# SQLite's: busy or locked by another writer, I/O, disk full, file not openable.
_TRANSIENT_SQLITE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN")


def is_unavailable(error: BaseException) -> bool:
    """True when handling again can succeed once something comes back; False for a defect (bad data,
    a constraint, a bug), which no retry fixes."""
    causes = _causes(error)
    for cause in causes:
        if type(cause).__name__ == "DataError" or isinstance(cause, (ValueError, ArithmeticError)):
            return False  # the driver refused a value (e.g. out of the column's range)
    for cause in causes:
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate:
            return sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES or sqlstate in _TRANSIENT_SQLSTATES
        sqlite_error = getattr(cause, "sqlite_errorname", None)
        if isinstance(sqlite_error, str):
            return sqlite_error.startswith(_TRANSIENT_SQLITE)
    if isinstance(error, sql.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, (sql.DataError, sql.IntegrityError, sql.ProgrammingError, sql.NotSupportedError)):
        return False
    return isinstance(error, UNAVAILABLE)


def _causes(error: BaseException) -> list[BaseException]:
    """The error and what it wraps: SQLAlchemy's `orig`, the driver's `__cause__`."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return chain


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused while a batch is applied. Every object a batch makes (its events,
    decisions, rows) lives until the batch ends: collecting during it freed nothing and traversed them
    again and again (a quarter of the CPU of applying a batch); once it ends, they are freed as usual
    (by their reference counts; the collector, running again, finds any cycles among them). Restored as
    it was: when another batch paused it first, that one resumes it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass(frozen=True)
class Rejected:
    """A record that is not an event this consumer can apply."""

    reason: str
    detail: str


def describe_validation_error(error: ValidationError) -> str:
    """Which fields were wrong and why, without the values (they may be patient data)."""
    return "; ".join(
        f"{'.'.join(map(str, item['loc'])) or '(event)'}: {item['msg']}"
        for item in error.errors(include_input=False, include_url=False)
    )[:2000]


def read_event(record: Record, parse: Callable[[bytes], Any], max_bytes: int = MAX_EVENT_BYTES) -> Any:
    """The record's event, or why it is `Rejected`; never raises."""
    for name, value in record.headers:
        if value is None:
            return Rejected("bad_header", f"header {name!r} has no value")
        try:
            value.decode()
        except UnicodeDecodeError:
            return Rejected("bad_header", f"header {name!r} is not UTF-8")
    if not record.key:
        return Rejected("missing_key", "the record has no key")
    if record.value is None:
        return Rejected("missing_value", "the record has no value")
    if len(record.value) > max_bytes:
        return Rejected("oversized", f"{len(record.value)} bytes, more than {max_bytes}")
    try:
        return parse(record.value)
    except ValidationError as error:
        kinds = {item["type"] for item in error.errors(include_url=False)}
        if "json_invalid" in kinds or "json_type" in kinds:
            return Rejected("not_json", "the value is not a JSON object")
        if kinds & {"union_tag_invalid", "union_tag_not_found"}:
            return Rejected("unknown_event_type", describe_validation_error(error))
        return Rejected("validation_failed", describe_validation_error(error))
    except Exception as error:  # a parser is pure: whatever it raises, the record is what is wrong
        return Rejected("validation_failed", type(error).__name__)


class DeadLetterSink(Protocol):
    async def send(self, topic: str, record: Record, headers: list[tuple[str, bytes]]) -> None: ...

    async def close(self) -> None: ...


class KafkaDeadLetters:
    """Writes dead letters with the record's own bytes: an idempotent producer (acks=all), started on
    the first dead letter and stopped by `close` (a no-op when none was written)."""

    def __init__(self, kafka: KafkaSettings, request_timeout_ms: int = 15_000) -> None:
        self.kafka = kafka
        self.request_timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None

    async def send(self, topic: str, record: Record, headers: list[tuple[str, bytes]]) -> None:
        producer = await self._started()
        try:
            await producer.send_and_wait(
                topic, key=record.key, value=record.value,
                headers=[(n, v) for n, v in record.headers if v is not None] + headers,
            )
        except BaseException:
            await self.close()  # start afresh next time
            raise

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):  # already broken; we are discarding it
                await producer.stop()

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **kafka_client_kwargs(self.kafka), client_id="clinic-notify-dead-letters",
                enable_idempotence=True, acks="all", request_timeout_ms=self.request_timeout_ms,
                max_request_size=4 * 1024 * 1024,
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer


class EventConsumer:
    def __init__(
        self,
        *,
        service: str,
        group_id: str,
        handle_batch: BatchHandler,
        dead_letters: DeadLetterSink,
        parse: Callable[[bytes], Any] = parse_appointment_event,
        dead_letter_topic: str = APPOINTMENTS_DEAD_LETTER,
        retry_pause_seconds: float = 2.0,
        attempts_before_dead_letter: int = 3,
        # Up to this many records a batch: one transaction and one offset commit for them all (a commit
        # flushes to disk, and the batch's reads and writes are a few statements whatever its size).
        max_records: int = 2000,
        max_event_bytes: int = MAX_EVENT_BYTES,
        kafka_call_timeout_seconds: float = 30.0,
    ) -> None:
        self.service = service
        self.group_id = group_id
        self.handle_batch = handle_batch
        self.dead_letters = dead_letters
        self.parse = parse
        self.dead_letter_topic = dead_letter_topic
        self.retry_pause_seconds = retry_pause_seconds
        self.attempts_before_dead_letter = attempts_before_dead_letter
        self.max_records = max_records
        self.max_event_bytes = max_event_bytes
        self.kafka_call_timeout_seconds = kafka_call_timeout_seconds
        self._kafka: AIOKafkaConsumer | None = None

    def subscribe(self, broker: KafkaBroker, topic: str) -> None:
        """A batch subscriber on `topic` whose offsets this consumer commits itself."""
        from faststream import AckPolicy

        subscriber = broker.subscriber(
            topic, group_id=self.group_id, batch=True, max_records=self.max_records,
            ack_policy=AckPolicy.MANUAL, auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )

        async def parse_batch(records: tuple[Record, ...]) -> StreamMessage:
            # Nothing decoded here: a record that is not what it should be is found by `read_event`.
            return StreamMessage(raw_message=records, body=b"", consumer=FAKE_CONSUMER)

        async def decode_batch(message: StreamMessage) -> Any:
            return None

        @subscriber(parser=parse_batch, decoder=decode_batch)
        async def on_batch(message: ContextMessage) -> None:
            records = message.raw_message
            assert isinstance(records, tuple) and subscriber.consumer is not None
            await self.consume(records, subscriber.consumer)

    async def consume(self, records: Sequence[Record], kafka: AIOKafkaConsumer) -> None:
        """Apply or dead-letter every record, then commit; or rewind. Never raises (FastStream would
        swallow it, and the records after this batch would commit past the failure)."""
        try:
            with _no_cycle_collection():
                await self._consume(list(records), kafka)
        except Exception as error:
            log.error("event_batch_failed_will_retry", records=len(records), error=type(error).__name__)
            await self._rewind(kafka, records, done=0)
            await asyncio.sleep(self.retry_pause_seconds)
        finally:
            await self.dead_letters.close()  # dead letters are rare: no producer kept between batches
        await self._export_lag(kafka, records)

    async def _consume(self, records: list[Record], kafka: AIOKafkaConsumer) -> None:
        readings = [read_event(record, self.parse, self.max_event_bytes) for record in records]
        events = [event for event in readings if not isinstance(event, Rejected)]
        try:
            if events:
                await self.handle_batch(events)
        except Exception as error:
            if is_unavailable(error):
                self._count(events, "retry")
                log.warning("event_batch_unavailable_will_retry", events=len(events), error=type(error).__name__)
                await self._rewind(kafka, records, done=0)
                await asyncio.sleep(self.retry_pause_seconds)
                return
            log.warning("event_batch_failed_applying_one_by_one", events=len(events), error=type(error).__name__)
            await self._one_by_one(records, readings, kafka)
            return
        # Dead letters after the events: a rewind above must not write them twice.
        for done, (record, reading) in enumerate(zip(records, readings, strict=True)):
            if isinstance(reading, Rejected) and not await self._dead_letter(record, reading):
                await self._rewind(kafka, records, done)
                await asyncio.sleep(self.retry_pause_seconds)
                return
        self._count(events, "processed")
        await self._commit(kafka, records)

    async def _one_by_one(self, records: list[Record], readings: list[Any], kafka: AIOKafkaConsumer) -> None:
        """Each event in its own transaction, so only the bad one is dead-lettered. Stops at the first
        one that cannot be finished now, committing what is done before it."""
        for done, (record, reading) in enumerate(zip(records, readings, strict=True)):
            rejection = reading if isinstance(reading, Rejected) else await self._apply_alone(reading)
            if rejection == "retry":
                await self._rewind(kafka, records, done)
                await asyncio.sleep(self.retry_pause_seconds)
                return
            if isinstance(rejection, Rejected) and not await self._dead_letter(record, rejection):
                await self._rewind(kafka, records, done)
                await asyncio.sleep(self.retry_pause_seconds)
                return
        await self._commit(kafka, records)

    async def _apply_alone(self, event: Any) -> Rejected | str | None:
        """None when applied, "retry" when unavailable, Rejected after the last failed attempt."""
        event_type = str(getattr(event, "event_type", "unknown"))
        for attempt in range(1, self.attempts_before_dead_letter + 1):
            try:
                await self.handle_batch([event])
            except Exception as error:
                if is_unavailable(error):
                    self._count([event], "retry")
                    log.warning("event_processing_unavailable_will_retry", event_id=str(getattr(event, "event_id", "")),
                                event_type=event_type, error=type(error).__name__)
                    return "retry"
                self._count([event], "error")
                # The error's type only: its message may quote the event's values.
                log.error("event_processing_failed", event_id=str(getattr(event, "event_id", "")),
                          event_type=event_type, attempt=attempt, error=type(error).__name__)
                if attempt == self.attempts_before_dead_letter:
                    return Rejected("processing_failed", f"{type(error).__name__} after {attempt} attempts")
                await asyncio.sleep(self.retry_pause_seconds)
                continue
            self._count([event], "processed")
            return None
        raise AssertionError("unreachable: the last attempt returns")

    async def _dead_letter(self, record: Record, rejected: Rejected) -> bool:
        """True once the dead letter is written; False (logged as an error) when it could not be."""
        headers = {
            "dlq-reason": rejected.reason,
            "dlq-detail": rejected.detail,
            "dlq-source-topic": record.topic,
            "dlq-source-partition": str(record.partition),
            "dlq-source-offset": str(record.offset),
            "dlq-consumer-group": self.group_id,
            "dlq-failed-at": datetime.now(UTC).isoformat(),
        }
        try:
            async with asyncio.timeout(self.kafka_call_timeout_seconds):
                await self.dead_letters.send(self.dead_letter_topic, record,
                                             [(name, value.encode()) for name, value in headers.items()])
        except Exception as error:
            log.error("dead_letter_not_written_will_retry", reason=rejected.reason, topic=self.dead_letter_topic,
                      partition=record.partition, offset=record.offset, error=type(error).__name__)
            return False
        DEAD_LETTERS.labels(self.service, rejected.reason).inc()
        log.warning("event_dead_lettered", reason=rejected.reason, detail=rejected.detail,
                    partition=record.partition, offset=record.offset)
        return True

    async def _commit(self, kafka: AIOKafkaConsumer, records: Sequence[Record]) -> None:
        await self._commit_offsets(kafka, {TopicPartition(r.topic, r.partition): r.offset + 1 for r in records})

    async def _rewind(self, kafka: AIOKafkaConsumer, records: Sequence[Record], done: int) -> None:
        """Commit the first `done` records, and read each partition again from its first record not done."""
        finished = {TopicPartition(r.topic, r.partition): r.offset + 1 for r in records[:done]}
        again: dict[TopicPartition, int] = {}
        for record in records[done:]:
            again.setdefault(TopicPartition(record.topic, record.partition), record.offset)
        finished = {tp: offset for tp, offset in finished.items() if tp not in again} | {
            tp: offset for tp, offset in again.items() if tp in finished
        }
        if finished:
            await self._commit_offsets(kafka, finished)
        for tp, offset in again.items():
            with contextlib.suppress(Exception):  # a partition revoked meanwhile resumes from its commit
                kafka.seek(tp, offset)

    async def _commit_offsets(self, kafka: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            async with asyncio.timeout(self.kafka_call_timeout_seconds):
                await kafka.commit(offsets)
        except Exception as error:  # the records are read again, by us or after a rebalance: applying is idempotent
            log.warning("offset_commit_failed", error=type(error).__name__)

    async def _export_lag(self, kafka: AIOKafkaConsumer, records: Sequence[Record]) -> None:
        """Records behind the position of each partition of the batch (the position is committed by now)."""
        for tp in {TopicPartition(r.topic, r.partition) for r in records}:
            with contextlib.suppress(Exception):  # revoked meanwhile: the next owner reports it
                highwater = kafka.highwater(tp)
                if highwater is not None:
                    async with asyncio.timeout(self.kafka_call_timeout_seconds):
                        position = await kafka.position(tp)
                    CONSUMER_LAG.labels(self.service, self.group_id, tp.topic, str(tp.partition)).set(
                        max(highwater - position, 0))

    def _count(self, events: Sequence[Any], outcome: str) -> None:
        for event_type, count in Counter(str(getattr(event, "event_type", "unknown")) for event in events).items():
            EVENTS_CONSUMED.labels(self.service, event_type, outcome).inc(count)
