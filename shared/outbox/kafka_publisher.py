"""Publishing outbox messages to Kafka with an idempotent producer; a fake for tests lives beside it."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaProducer

from shared.kafka_security import kafka_client_kwargs
from shared.outbox.store import OutboxMessage
from shared.settings import KafkaSettings


@dataclass(frozen=True)
class PublishResult:
    acknowledged: list[int]  # outbox ids the broker acknowledged
    error: Exception | None = None  # why the others were not


class EventPublisher(Protocol):
    async def publish(self, messages: Sequence[OutboxMessage]) -> PublishResult: ...

    async def close(self) -> None: ...


class KafkaEventPublisher:
    """One long-lived idempotent producer (acks=all), recreated after a failure."""

    def __init__(self, kafka: KafkaSettings | str, client_id: str = "clinic-notify-outbox",
                 request_timeout_ms: int = 15_000) -> None:
        # A bare address stands for the KafkaSettings of the environment with that address.
        self.kafka = KafkaSettings(bootstrap_servers=kafka) if isinstance(kafka, str) else kafka
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None

    async def publish(self, messages: Sequence[OutboxMessage]) -> PublishResult:
        try:
            producer = await self._started()
        except Exception as start_error:
            return PublishResult([], start_error)
        sent: list[tuple[int, asyncio.Future[object]]] = []
        error: Exception | None = None
        for message in messages:
            try:
                future = await producer.send(
                    message.topic,
                    value=message.value.encode(),
                    key=message.key.encode(),
                    headers=[(name, value.encode()) for name, value in message.headers.items()],
                )
            except Exception as send_error:
                error = send_error
                break
            sent.append((message.id, future))
        outcomes = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        acknowledged = [
            id_ for (id_, _), outcome in zip(sent, outcomes, strict=True) if not isinstance(outcome, BaseException)
        ]
        error = error or next((o for o in outcomes if isinstance(o, Exception)), None)
        if error is not None:
            await self.close()  # start afresh: a new producer id, fresh connections
        return PublishResult(acknowledged, error)

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
        self.published.extend(messages)
        return PublishResult([message.id for message in messages])

    async def close(self) -> None:
        pass
