"""The cycle collector waits while a batch is applied, and runs again after it, whatever the batch's fate."""
from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from shared.consumer import EventConsumer
from shared.topics import APPOINTMENTS
from tests.support.events import booked, in_hours


class OffsetsKept:
    """What the consumer asks of its Kafka consumer: commits are kept, nothing else matters here."""

    def __init__(self) -> None:
        self.committed: dict[TopicPartition, int] = {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.update(offsets)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        pass

    def highwater(self, tp: TopicPartition) -> int | None:
        return None


class DeadLettersKept:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, topic: str, record: Any, headers: list[tuple[str, bytes]]) -> None:
        self.sent.append(record)

    async def close(self) -> None:
        pass


def records(count: int) -> list[ConsumerRecord[bytes, bytes]]:
    return [ConsumerRecord(topic=APPOINTMENTS, partition=0, offset=n, timestamp=0, timestamp_type=0,
                           key=f"apt-{n}".encode(), value=booked(f"apt-{n}", in_hours(30)).model_dump_json().encode(),
                           checksum=None, serialized_key_size=0, serialized_value_size=0, headers=[])
            for n in range(count)]


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    gc.enable() if was else gc.disable()


async def consume(handle: Any) -> OffsetsKept:
    kafka = OffsetsKept()
    consumer = EventConsumer(service="test", group_id="test", handle_batch=handle, dead_letters=DeadLettersKept(),
                             retry_pause_seconds=0)
    await consumer.consume(records(3), kafka)  # a stand-in for AIOKafkaConsumer
    return kafka


async def test_a_batch_is_applied_with_the_collector_waiting_and_it_runs_again_after(collector_on: None) -> None:
    seen: list[bool] = []

    async def handle(events: list[Any]) -> None:
        seen.append(gc.isenabled())

    kafka = await consume(handle)
    assert seen == [False]
    assert gc.isenabled()
    assert kafka.committed == {TopicPartition(APPOINTMENTS, 0): 3}


@pytest.mark.parametrize("error", [ValueError("a defect"), ConnectionRefusedError(111, "database down")])
async def test_a_batch_that_fails_leaves_the_collector_running(collector_on: None, error: Exception) -> None:
    async def handle(events: list[Any]) -> None:
        raise error

    await consume(handle)
    assert gc.isenabled()


async def test_a_collector_the_application_turned_off_stays_off(collector_on: None) -> None:
    gc.disable()

    async def handle(events: list[Any]) -> None:
        pass

    await consume(handle)
    assert not gc.isenabled()
