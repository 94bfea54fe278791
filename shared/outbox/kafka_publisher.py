"""Publishing outbox messages to Kafka with an idempotent producer; a fake for tests lives beside it."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

from shared.kafka_security import kafka_client_kwargs
from shared.outbox.store import OutboxMessage
from shared.settings import KafkaSettings


@dataclass(frozen=True)
class PublishResult:
    acknowledged: list[int]  # outbox ids the broker acknowledged
    error: Exception | None = None  # why the others were not
    # Outbox ids Kafka can never take, and why (too large, not serializable): retrying cannot help.
    unpublishable: dict[int, str] = field(default_factory=dict)


def serialized(message: OutboxMessage) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Key, value and headers as Kafka carries them; raises when the stored row cannot be."""
    if not isinstance(message.headers, dict):
        raise TypeError("the headers are not a JSON object")
    return (message.key.encode(), message.value.encode(),
            [(str(name), value.encode()) for name, value in message.headers.items()])


class EventPublisher(Protocol):
    async def publish(self, messages: Sequence[OutboxMessage]) -> PublishResult: ...

    async def close(self) -> None: ...


class KafkaEventPublisher:
    """One long-lived idempotent producer (acks=all), recreated after a failure."""

    def __init__(self, kafka: KafkaSettings | str, client_id: str = "clinic-notify-outbox",
                 request_timeout_ms: int = 15_000, max_request_size: int = 1_048_576) -> None:
        # A bare address stands for the KafkaSettings of the environment with that address.
        self.kafka = KafkaSettings(bootstrap_servers=kafka) if isinstance(kafka, str) else kafka
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self.max_request_size = max_request_size
        self._producer: AIOKafkaProducer | None = None

    async def publish(self, messages: Sequence[OutboxMessage]) -> PublishResult:
        try:
            producer = await self._started()
        except Exception as start_error:
            return PublishResult([], start_error)
        sent: list[tuple[int, asyncio.Future[object]]] = []
        unpublishable: dict[int, str] = {}
        error: Exception | None = None
        for message in messages:
            try:
                key, value, headers = serialized(message)
            except Exception as serialization_error:
                unpublishable[message.id] = f"not serializable: {type(serialization_error).__name__}"
                continue
            try:
                future = await producer.send(message.topic, value=value, key=key, headers=headers)
            except MessageSizeTooLargeError:
                unpublishable[message.id] = f"too large: {len(value)} bytes, producer limit {self.max_request_size}"
                continue
            except Exception as send_error:
                error = send_error
                break
            sent.append((message.id, future))
        outcomes = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        acknowledged = []
        for (id_, _), outcome in zip(sent, outcomes, strict=True):
            if isinstance(outcome, (MessageSizeTooLargeError, RecordTooLargeError)):
                unpublishable[id_] = f"too large for the broker: {type(outcome).__name__}"
            elif isinstance(outcome, Exception):
                error = error or outcome
            else:
                acknowledged.append(id_)
        if error is not None:
            await self.close()  # start afresh: a new producer id, fresh connections
        return PublishResult(acknowledged, error, unpublishable)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):  # already broken; we are discarding it
                await producer.stop()

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **kafka_client_kwargs(self.kafka),
                client_id=self.client_id,
                enable_idempotence=True,
                acks="all",
                request_timeout_ms=self.request_timeout_ms,
                max_request_size=self.max_request_size,
                linger_ms=5,
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer


@dataclass
class RecordingPublisher:
    """In-memory publisher for tests: records what it was given, fails while `failing` is set."""

    published: list[OutboxMessage] = field(default_factory=list)
    failing: Exception | None = None

    async def publish(self, messages: Sequence[OutboxMessage]) -> PublishResult:
        if self.failing is not None:
            return PublishResult([], self.failing)
        unpublishable: dict[int, str] = {}
        for message in messages:
            try:
                serialized(message)
            except Exception as error:
                unpublishable[message.id] = f"not serializable: {type(error).__name__}"
                continue
            self.published.append(message)
        return PublishResult([m.id for m in messages if m.id not in unpublishable], None, unpublishable)

    async def close(self) -> None:
        pass
