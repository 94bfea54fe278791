"""The real broker keeps per-key order across partitions and hands messages to a consumer group."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.kafka_server import KafkaServer

pytestmark = pytest.mark.kafka

TOPIC = "appointments.booked"
PATIENTS = [f"patient-{n}" for n in range(6)]
EVENTS_PER_PATIENT = 20


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def consume(bootstrap: str, topic: str, group: str, expected: int) -> list[tuple[int, str, str]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    await consumer.start()
    received: list[tuple[int, str, str]] = []
    try:
        async with asyncio.timeout(30):
            while len(received) < expected:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    received += [
                        (r.partition, r.key.decode(), r.value.decode()) for r in records
                    ]
        await consumer.commit()
    finally:
        await consumer.stop()
    return received


async def test_each_patients_events_arrive_in_the_order_they_were_sent(kafka: KafkaServer) -> None:
    await create_topic(kafka.bootstrap_servers, TOPIC, partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, enable_idempotence=True)
    await producer.start()
    try:
        for seq in range(EVENTS_PER_PATIENT):
            for patient in PATIENTS:
                await producer.send(TOPIC, key=patient.encode(), value=f"{patient}:{seq}".encode())
        await producer.flush()
        assert await producer.partitions_for(TOPIC) == {0, 1, 2}
    finally:
        await producer.stop()

    received = await consume(kafka.bootstrap_servers, TOPIC, "notifier", len(PATIENTS) * EVENTS_PER_PATIENT)

    values_by_patient: dict[str, list[str]] = defaultdict(list)
    partitions_by_patient: dict[str, set[int]] = defaultdict(set)
    for partition, key, value in received:
        values_by_patient[key].append(value)
        partitions_by_patient[key].add(partition)
    assert len(received) == len(PATIENTS) * EVENTS_PER_PATIENT
    for patient in PATIENTS:
        assert values_by_patient[patient] == [f"{patient}:{seq}" for seq in range(EVENTS_PER_PATIENT)]
        assert len(partitions_by_patient[patient]) == 1
    assert len({p for parts in partitions_by_patient.values() for p in parts}) > 1


async def test_a_group_commits_how_far_it_has_read(kafka: KafkaServer) -> None:
    topic = "aftercare.check_ins"
    await create_topic(kafka.bootstrap_servers, topic, partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, enable_idempotence=True)
    await producer.start()
    try:
        for patient in PATIENTS:
            await producer.send_and_wait(topic, key=patient.encode(), value=b"soreness?")
    finally:
        await producer.stop()

    await consume(kafka.bootstrap_servers, topic, "aftercare", len(PATIENTS))

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets("aftercare")
    finally:
        await admin.close()
    assert sum(meta.offset for meta in offsets.values()) == len(PATIENTS)
