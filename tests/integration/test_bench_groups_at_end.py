"""The benchmarks' services read only what comes after their start (`bench.harness.groups.start_groups_at_end`):
bookings an earlier benchmark left in the topic are not theirs to process."""
from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.harness.groups import start_groups_at_end
from shared.topics import APPOINTMENTS
from tests.support.kafka_server import KafkaServer


async def test_a_group_started_at_the_end_reads_none_of_the_records_already_in_the_topic(
    kafka: KafkaServer, unique_id: str
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        for n in range(30):  # spread over the topic's partitions by key
            await producer.send_and_wait(APPOINTMENTS, b"{}", key=f"old-{unique_id}-{n}".encode())
        group = f"late-{unique_id}"
        await start_groups_at_end(kafka.bootstrap_servers, {group: APPOINTMENTS})
        await producer.send_and_wait(APPOINTMENTS, b"{}", key=f"new-{unique_id}".encode())
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(APPOINTMENTS, bootstrap_servers=kafka.bootstrap_servers, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    read: list[str] = []
    try:
        async with asyncio.timeout(60):
            while f"new-{unique_id}" not in read:
                batches = await consumer.getmany(timeout_ms=500)
                read += [record.key.decode() for records in batches.values() for record in records if record.key]
    finally:
        await consumer.stop()
    assert [key for key in read if unique_id in key] == [f"new-{unique_id}"]
