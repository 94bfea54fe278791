"""Kafka topics of the system, with the partition counts they are created with."""
from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

APPOINTMENTS = "clinic.appointments.v1"
APPOINTMENTS_DEAD_LETTER = "clinic.appointments.v1.dlq"
CONSENT = "clinic.consent.v1"
CONSENT_DEAD_LETTER = "clinic.consent.v1.dlq"
AFTERCARE_RECORDS = "clinic.aftercare.records.v1"
AFTERCARE_ALERTS = "clinic.aftercare.alerts.v1"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int | None = None


ALL_TOPICS = (
    TopicSpec(APPOINTMENTS, partitions=6),
    TopicSpec(APPOINTMENTS_DEAD_LETTER, partitions=1, retention_ms=30 * 24 * 3600 * 1000),
    TopicSpec(CONSENT, partitions=3),
    TopicSpec(CONSENT_DEAD_LETTER, partitions=1, retention_ms=30 * 24 * 3600 * 1000),
    TopicSpec(AFTERCARE_RECORDS, partitions=3),
    TopicSpec(AFTERCARE_ALERTS, partitions=1),
)


async def ensure_topics(bootstrap_servers: str, replication_factor: int = 1) -> list[str]:
    """Create the topics that are missing; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=spec.name,
                num_partitions=spec.partitions,
                replication_factor=replication_factor,
                topic_configs={"retention.ms": str(spec.retention_ms)} if spec.retention_ms else {},
            )
            for spec in ALL_TOPICS
            if spec.name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created them between our list and create
        return [topic.name for topic in missing]
    finally:
        await admin.close()


async def wait_for_broker_and_ensure_topics(bootstrap_servers: str, timeout_seconds: float = 120.0) -> None:
    """At start-up the broker may still be coming up: keep trying until it answers or time runs out."""
    import asyncio
    import time

    from aiokafka.errors import KafkaConnectionError, KafkaError

    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            await ensure_topics(bootstrap_servers)
            return
        except (KafkaConnectionError, KafkaError, OSError) as error:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Kafka at {bootstrap_servers} did not answer within {timeout_seconds:.0f}s: {error!r}"
                ) from error
            await asyncio.sleep(1.0)
