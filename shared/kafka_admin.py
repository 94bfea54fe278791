"""Creating the system's topics on the broker, and waiting for the broker at start-up."""
from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from shared.kafka_security import kafka_client_kwargs
from shared.settings import KafkaSettings
from shared.topics import ALL_TOPICS, TopicSpec


def _topic_configs(spec: TopicSpec, kafka: KafkaSettings) -> dict[str, str]:
    # With acks=all, a write is acknowledged once min.insync.replicas copies hold it.
    configs = {"min.insync.replicas": str(kafka.min_insync_replicas)}
    if spec.retention_ms:
        configs["retention.ms"] = str(spec.retention_ms)
    return configs


async def ensure_topics(kafka: KafkaSettings | str) -> list[str]:
    """Create the topics that are missing; returns the names created.

    A bare address stands for the KafkaSettings of the environment with that address.
    """
    if isinstance(kafka, str):
        kafka = KafkaSettings(bootstrap_servers=kafka)
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(kafka))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=spec.name,
                num_partitions=spec.partitions,
                replication_factor=kafka.replication_factor,
                topic_configs=_topic_configs(spec, kafka),
            )
            for spec in ALL_TOPICS
            if spec.name not in existing
        ]
        if missing:
            try:
                response = await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created them between our list and create
            else:
                _raise_refusals(response.topic_errors)
        return [topic.name for topic in missing]
    finally:
        await admin.close()


class TopicCreationRefused(RuntimeError):
    """The broker answered but will not create a topic as configured (replication factor, configs, ACLs)."""


def _raise_refusals(topic_errors: list[tuple[Any, ...]]) -> None:
    # The broker answers per topic; aiokafka does not raise for those answers.
    for topic, code, *message in topic_errors:
        if code in (0, TopicAlreadyExistsError.errno):
            continue  # created, or created by another process between our list and create
        error = for_code(code)
        if error.retriable:
            raise error(f"{topic}: {message}")
        detail = message[0] if message and message[0] else error.description
        raise TopicCreationRefused(f"the broker refused to create {topic}: {error.__name__}: {detail}")


async def wait_for_broker_and_ensure_topics(kafka: KafkaSettings | str, timeout_seconds: float = 120.0) -> None:
    """At start-up the broker may still be coming up: keep trying until it answers or time runs out."""
    import asyncio
    import time

    from aiokafka.errors import KafkaConnectionError, KafkaError

    if isinstance(kafka, str):
        kafka = KafkaSettings(bootstrap_servers=kafka)
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            await ensure_topics(kafka)
            return
        except (KafkaConnectionError, KafkaError, OSError) as error:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Kafka at {kafka.bootstrap_servers} did not answer within {timeout_seconds:.0f}s: {error!r}"
                ) from error
            await asyncio.sleep(1.0)


async def broker_ready_unless_stopped(
    kafka: KafkaSettings, stop: asyncio.Event, timeout_seconds: float = 120.0
) -> bool:
    """Wait for the broker and its topics; False when the service is told to stop first.
    Raises if the broker never answers."""
    waiting = asyncio.create_task(wait_for_broker_and_ensure_topics(kafka, timeout_seconds))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([waiting, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not waiting.done():
        waiting.cancel()
        return False
    waiting.result()
    return True
