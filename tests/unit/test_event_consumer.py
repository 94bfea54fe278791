"""How a consumer treats one event: commit after success, retry what can recover, dead-letter the rest."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from shared.consumer import EventConsumer, EventHandler
from shared.events.appointment import AppointmentEvent
from shared.topics import APPOINTMENTS, APPOINTMENTS_DEAD_LETTER
from tests.support.events import booked, in_hours


@dataclass(frozen=True)
class Record:
    topic: str = APPOINTMENTS
    partition: int = 2
    offset: int = 41
    key: bytes = b"apt-1"


@dataclass
class Message:
    body: bytes
    raw_message: Record = field(default_factory=Record)
    outcome: list[str] = field(default_factory=list)

    async def ack(self) -> None:
        self.outcome.append("ack")

    async def nack(self) -> None:
        self.outcome.append("nack")


@dataclass
class Broker:
    published: list[dict[str, Any]] = field(default_factory=list)

    async def publish(self, body: bytes, *, topic: str, key: bytes, headers: dict[str, str]) -> None:
        self.published.append({"topic": topic, "key": key, "headers": headers, "body": body})


def consumer(broker: Broker, handle: EventHandler) -> Callable[[Message], Awaitable[None]]:
    reader = EventConsumer(service="test", group_id="notifier", broker=broker,  # type: ignore[arg-type]  # fake broker
                           handle=handle, retry_pause_seconds=0)
    return reader  # type: ignore[return-value]  # Message has the parts of a KafkaMessage the consumer reads


GOOD = booked("apt-1", in_hours(30)).model_dump_json().encode()


async def test_a_handled_event_is_committed() -> None:
    handled: list[str] = []

    async def handle(event: AppointmentEvent) -> None:
        handled.append(event.appointment_id)

    message = Message(GOOD)
    await consumer(Broker(), handle)(message)
    assert handled == ["apt-1"] and message.outcome == ["ack"]


async def test_a_database_outage_is_retried_for_as_long_as_it_lasts() -> None:
    broker = Broker()

    async def handle(event: AppointmentEvent) -> None:
        raise OperationalError("INSERT ...", {}, Exception("connection refused"))

    reader = consumer(broker, handle)
    message = Message(GOOD)
    for _ in range(10):
        await reader(message)
    assert message.outcome == ["nack"] * 10 and broker.published == []


async def test_an_event_that_keeps_breaking_the_handler_is_dead_lettered_and_the_partition_moves_on() -> None:
    broker = Broker()

    async def handle(event: AppointmentEvent) -> None:
        raise KeyError("a defect")

    reader = consumer(broker, handle)
    message = Message(GOOD)
    for _ in range(3):
        await reader(message)
    assert message.outcome == ["nack", "nack", "ack"]
    [letter] = broker.published
    assert letter["topic"] == APPOINTMENTS_DEAD_LETTER and letter["body"] == GOOD
    assert letter["headers"]["dlq-reason"] == "processing_failed"
    assert letter["headers"]["dlq-detail"] == "KeyError after 3 attempts"
    assert (letter["headers"]["dlq-source-partition"], letter["headers"]["dlq-source-offset"]) == ("2", "41")


@pytest.mark.parametrize("body", [b"{not json", b'{"event_type": "AppointmentBooked"}', b""])
async def test_an_invalid_event_is_dead_lettered_at_once(body: bytes) -> None:
    broker = Broker()

    async def handle(event: AppointmentEvent) -> None:
        raise AssertionError("never handed an invalid event")

    message = Message(body)
    await consumer(broker, handle)(message)
    assert message.outcome == ["ack"]
    assert broker.published[0]["headers"]["dlq-reason"] == "validation_failed"
