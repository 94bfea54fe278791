"""One event off Kafka: validate, hand to the service, and only then commit the offset.

An event that fails validation goes to the dead-letter topic with the reason in its headers and
the consumer moves on. When handling it fails because something it needs is unavailable (the
database down, a concurrent change), the consumer rewinds to the same event and tries again after
a pause, for as long as it takes: nothing is skipped. Any other failure is a defect that retrying
cannot fix: after a few attempts the event goes to the dead-letter topic too, so one bad event
cannot stop a partition.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from shared.events.appointment import parse_appointment_event
from shared.observability import DEAD_LETTERS, EVENTS_CONSUMED, get_logger
from shared.topics import APPOINTMENTS_DEAD_LETTER

log = get_logger(__name__)

EventHandler = Callable[[Any], Awaitable[object]]


class RetryableConflict(Exception):
    """A concurrent writer changed what this event needs; handling it again will succeed."""


# What a retry can outlast: the database or the network coming back, a concurrent writer finishing.
UNAVAILABLE: tuple[type[BaseException], ...] = (DBAPIError, OSError, TimeoutError, RetryableConflict)


def describe_validation_error(error: ValidationError) -> str:
    """Which fields were wrong and why, without the values (they may be patient data)."""
    return "; ".join(
        f"{'.'.join(map(str, item['loc'])) or '(event)'}: {item['msg']}"
        for item in error.errors(include_input=False, include_url=False)
    )[:2000]


class EventConsumer:
    def __init__(
        self,
        *,
        service: str,
        group_id: str,
        broker: KafkaBroker,
        handle: EventHandler,
        parse: Callable[[bytes], Any] = parse_appointment_event,
        dead_letter_topic: str = APPOINTMENTS_DEAD_LETTER,
        retry_pause_seconds: float = 2.0,
        attempts_before_dead_letter: int = 3,
    ) -> None:
        self.attempts_before_dead_letter = attempts_before_dead_letter
        self._failures: dict[tuple[int, int], int] = {}
        self.parse = parse
        self.dead_letter_topic = dead_letter_topic
        self.service = service
        self.group_id = group_id
        self.broker = broker
        self.handle = handle
        self.retry_pause_seconds = retry_pause_seconds

    async def __call__(self, message: KafkaMessage) -> None:
        try:
            event = self.parse(message.body)
        except ValidationError as error:
            await self.dead_letter(message, "validation_failed", describe_validation_error(error))
            await message.ack()
            return
        record: ConsumerRecord = message.raw_message  # one record: not a batch
        position = (record.partition, record.offset)
        try:
            await self.handle(event)
        except UNAVAILABLE as error:
            EVENTS_CONSUMED.labels(self.service, event.event_type, "retry").inc()
            log.warning("event_processing_unavailable_will_retry", event_id=str(event.event_id),
                        event_type=event.event_type, error=type(error).__name__)
            await asyncio.sleep(self.retry_pause_seconds)
            await message.nack()
            return
        except Exception as error:
            EVENTS_CONSUMED.labels(self.service, event.event_type, "error").inc()
            log.exception("event_processing_failed", event_id=str(event.event_id), event_type=event.event_type)
            failures = self._failures.get(position, 0) + 1
            if failures < self.attempts_before_dead_letter:
                self._failures[position] = failures
                await asyncio.sleep(self.retry_pause_seconds)
                await message.nack()
                return
            self._failures.pop(position, None)
            await self.dead_letter(message, "processing_failed", f"{type(error).__name__} after {failures} attempts")
            await message.ack()
            return
        self._failures.pop(position, None)
        EVENTS_CONSUMED.labels(self.service, event.event_type, "processed").inc()
        await message.ack()

    async def dead_letter(self, message: KafkaMessage, reason: str, detail: str) -> None:
        record: ConsumerRecord = message.raw_message  # one record: not a batch subscriber
        await self.broker.publish(
            message.body,
            topic=self.dead_letter_topic,
            key=record.key,
            headers={
                "dlq-reason": reason,
                "dlq-detail": detail,
                "dlq-source-topic": record.topic,
                "dlq-source-partition": str(record.partition),
                "dlq-source-offset": str(record.offset),
                "dlq-consumer-group": self.group_id,
                "dlq-failed-at": datetime.now(UTC).isoformat(),
            },
        )
        DEAD_LETTERS.labels(self.service, reason).inc()
        log.warning("event_dead_lettered", reason=reason, detail=detail,
                    partition=record.partition, offset=record.offset)
