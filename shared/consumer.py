"""One event off Kafka: validate, hand to the service, and only then commit the offset.

An event that fails validation goes to the dead-letter topic with the reason in its headers and
the consumer moves on; a failure of the service itself (database down...) rewinds to the same
event and tries again after a pause, so nothing is skipped.
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

from shared.events.appointment import parse_appointment_event
from shared.observability import DEAD_LETTERS, EVENTS_CONSUMED, get_logger
from shared.topics import APPOINTMENTS_DEAD_LETTER

log = get_logger(__name__)

EventHandler = Callable[[Any], Awaitable[object]]


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
    ) -> None:
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
        try:
            await self.handle(event)
        except Exception:
            EVENTS_CONSUMED.labels(self.service, event.event_type, "error").inc()
            log.exception("event_processing_failed_will_retry", event_id=str(event.event_id),
                          event_type=event.event_type)
            await asyncio.sleep(self.retry_pause_seconds)
            await message.nack()
            return
        EVENTS_CONSUMED.labels(self.service, event.event_type, "processed").inc()
        await message.ack()

    async def dead_letter(self, message: KafkaMessage, reason: str, detail: str) -> None:
        record: ConsumerRecord = message.raw_message  # type: ignore[assignment]  # one record: not a batch subscriber
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
