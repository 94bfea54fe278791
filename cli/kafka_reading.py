"""Reading Kafka for operators: no consumer group joined, no offset committed."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from aiokafka.structs import OffsetAndMetadata

from shared.kafka_security import kafka_client_kwargs
from shared.settings import KafkaSettings

READ_TIMEOUT_S = 30.0
COORDINATOR_ATTEMPTS = 5  # a fresh broker creates its offsets topic on the first group lookup


def _connection(bootstrap_servers: str) -> dict[str, Any]:
    """The address operators gave, secured as the services are (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, ...)."""
    return kafka_client_kwargs(KafkaSettings(bootstrap_servers=bootstrap_servers))


@asynccontextmanager
async def standalone_consumer(bootstrap_servers: str) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        **_connection(bootstrap_servers), group_id=None, enable_auto_commit=False, request_timeout_ms=10_000
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


@asynccontextmanager
async def admin_client(bootstrap_servers: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(**_connection(bootstrap_servers), request_timeout_ms=10_000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def topic_partitions(admin: AIOKafkaAdminClient, topic: str) -> list[TopicPartition]:
    [description] = await admin.describe_topics([topic])
    if description["error_code"] != 0 or not description["partitions"]:
        raise LookupError(f"topic {topic} does not exist")
    return sorted(TopicPartition(topic, part["partition"]) for part in description["partitions"])


async def committed_offsets(
    admin: AIOKafkaAdminClient, group: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, OffsetAndMetadata]:
    for attempt in range(1, COORDINATOR_ATTEMPTS + 1):
        try:
            return await admin.list_consumer_group_offsets(group, partitions=partitions)
        except GroupCoordinatorNotAvailableError:
            if attempt == COORDINATOR_ATTEMPTS:
                raise
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")


async def newest_records(bootstrap_servers: str, topic: str, limit: int) -> tuple[list[ConsumerRecord], int]:
    """The last `limit` records of each partition, oldest first, and how many the topic holds."""
    async with admin_client(bootstrap_servers) as admin:
        partitions = await topic_partitions(admin, topic)
    async with standalone_consumer(bootstrap_servers) as consumer:
        consumer.assign(partitions)
        beginnings = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        for partition in partitions:
            consumer.seek(partition, max(beginnings[partition], ends[partition] - limit))
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while not await _all_read(consumer, ends) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            records.extend(record for batch in batches.values() for record in batch)
    records.sort(key=lambda record: (record.timestamp, record.partition, record.offset))
    return records[-limit:], sum(ends[p] - beginnings[p] for p in partitions)


async def _all_read(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    positions = await asyncio.gather(*(consumer.position(partition) for partition in ends))
    return all(position >= ends[partition] for position, partition in zip(positions, ends, strict=True))
