"""Where the benchmarks' consumer groups start reading: a topic's partitions, as the broker reports them,
and the offsets a group is given before its service starts."""
from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka_admin import ensure_topics
from shared.topics import APPOINTMENTS


async def partitions_of(bootstrap_servers: str, topic: str = APPOINTMENTS) -> list[TopicPartition]:
    """From the broker (describe_topics): a consumer's own metadata may know no topic yet (aiokafka's
    `topics()` fetches the cluster's without keeping it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        [description] = await admin.describe_topics([topic])
        return [TopicPartition(topic, p["partition"]) for p in description["partitions"]]
    finally:
        await admin.close()


async def start_group_at(bootstrap_servers: str, group: str, starts: dict[TopicPartition, int]) -> None:
    """The group's committed offsets: it reads from `starts` on."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(starts))
        await consumer.commit(dict(starts))
    finally:
        await consumer.stop()


async def start_groups_at_end(bootstrap_servers: str, groups: dict[str, str]) -> None:
    """Each group (group -> topic) committed at the end of its topic, so that it reads only what comes next:
    a group left without offsets would read the whole topic, every booking an earlier benchmark published."""
    await ensure_topics(bootstrap_servers)
    for group, topic in groups.items():
        partitions = await partitions_of(bootstrap_servers, topic)
        if not partitions:
            raise RuntimeError(f"the broker reports no partitions of {topic}")
        offsets = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None)
        await offsets.start()
        try:
            ends = await offsets.end_offsets(partitions)
        finally:
            await offsets.stop()
        await start_group_at(bootstrap_servers, group, ends)
