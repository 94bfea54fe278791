"""A broker call that never answers (a dead letter, an offset commit, a position) is a logged failure
and a retry, never a consumer that silently stops reading."""
from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from structlog.testing import capture_logs

from shared.consumer import EventConsumer
from shared.topics import APPOINTMENTS

BOUND_S = 0.3


def not_json(offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic=APPOINTMENTS, partition=1, offset=offset, timestamp=0, timestamp_type=0,
                          key=b"apt-1", value=b"not json", checksum=None, serialized_key_size=0,
                          serialized_value_size=0, headers=[])


class Broker:
    """The consumer's side of aiokafka; each call can be made to hang."""

    def __init__(self, hang: set[str]) -> None:
        self.hang = hang
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []

    async def _maybe_hang(self, call: str) -> None:
        if call in self.hang:
            await asyncio.Event().wait()

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self._maybe_hang("commit")
        self.commits.append(offsets)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    def highwater(self, tp: TopicPartition) -> int:
        return 10

    async def position(self, tp: TopicPartition) -> int:
        await self._maybe_hang("position")
        return 10


def as_aiokafka(broker: Broker) -> AIOKafkaConsumer:
    return cast(AIOKafkaConsumer, broker)


class DeadLetters:
    def __init__(self, hang_first: int) -> None:
        self.hang_first = hang_first
        self.written: list[int] = []

    async def send(self, topic: str, record: Any, headers: list[tuple[str, bytes]]) -> None:
        if self.hang_first > 0:
            self.hang_first -= 1
            await asyncio.Event().wait()
        self.written.append(record.offset)

    async def close(self) -> None:
        return None


def consumer(dead_letters: DeadLetters) -> EventConsumer:
    async def handle(events: list[Any]) -> None:
        return None

    return EventConsumer(service="test", group_id="g", handle_batch=handle, dead_letters=dead_letters,
                         retry_pause_seconds=0, kafka_call_timeout_seconds=BOUND_S)


async def test_a_dead_letter_write_that_never_answers_is_logged_and_the_record_read_again() -> None:
    letters, broker = DeadLetters(hang_first=1), Broker(hang=set())
    reader = consumer(letters)
    with capture_logs() as logs:
        await asyncio.wait_for(reader.consume([not_json(7)], as_aiokafka(broker)), timeout=5)
    assert letters.written == [] and broker.commits == []
    assert broker.seeks == [(TopicPartition(APPOINTMENTS, 1), 7)], "read again from the record not done"
    assert [entry["error"] for entry in logs if entry["event"] == "dead_letter_not_written_will_retry"] == [
        "TimeoutError"]

    await asyncio.wait_for(reader.consume([not_json(7)], as_aiokafka(broker)), timeout=5)
    assert letters.written == [7] and broker.commits == [{TopicPartition(APPOINTMENTS, 1): 8}]


@pytest.mark.parametrize("call", ["commit", "position"])
async def test_a_commit_or_a_position_that_never_answers_does_not_stop_the_consumer(call: str) -> None:
    letters, broker = DeadLetters(hang_first=0), Broker(hang={call})
    with capture_logs() as logs:
        await asyncio.wait_for(consumer(letters).consume([not_json(3)], as_aiokafka(broker)), timeout=5)
    assert letters.written == [3]
    if call == "commit":
        assert [entry["error"] for entry in logs if entry["event"] == "offset_commit_failed"] == ["TimeoutError"]
