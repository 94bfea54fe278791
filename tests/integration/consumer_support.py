"""What the consumer tests share: a notifier on the real broker, raw records, the dead-letter topic, lag."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.notifier import bootstrap
from services.notifier.settings import NotifierSettings
from shared.channels.messages import EmailMessage, SmsMessage
from shared.settings import CommonSettings, DeliverySettings, KafkaSettings, TwilioSettings
from shared.topics import APPOINTMENTS
from tests.support.kafka_server import free_port

Header = tuple[str, bytes | None]


@dataclass(frozen=True)
class Produced:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]


class NothingIsSent:
    async def send(self, message: EmailMessage | SmsMessage) -> str:
        raise AssertionError("these tests send nothing")


def notifier_settings(bootstrap_servers: str, database_url: str, group_id: str) -> NotifierSettings:
    return NotifierSettings(
        database_url=database_url, group_id=group_id, metrics_port=None, http_port=free_port(),
        common=CommonSettings(kafka=KafkaSettings(bootstrap_servers=bootstrap_servers)),
        delivery=DeliverySettings(link_secret="a-test-secret-of-at-least-32-bytes",
                                  twilio=TwilioSettings(api_base_url="http://127.0.0.1:9")),
    )


@asynccontextmanager
async def running_notifier(settings: NotifierSettings) -> AsyncIterator[bootstrap.NotifierParts]:
    parts = bootstrap.build(settings, email=NothingIsSent(), sms=NothingIsSent())
    stop = asyncio.Event()
    running = asyncio.create_task(bootstrap.run(parts, stop))
    try:
        async with asyncio.timeout(60):
            while not parts.broker.running:
                if running.done():
                    running.result()  # raises why it ended
                    raise AssertionError("the notifier ended before its broker started")
                await asyncio.sleep(0.05)
        yield parts
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(running, return_exceptions=True), timeout=60)


async def produce(
    bootstrap_servers: str, records: Sequence[tuple[bytes | None, bytes | None, Sequence[Header]]],
    topic: str = APPOINTMENTS, partition: int | None = None,
) -> list[Produced]:
    """Raw records, exactly as given: no schema, no encoding, nothing checked."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, max_request_size=2_000_000)
    await producer.start()
    try:
        produced = []
        for key, value, headers in records:
            meta = await producer.send_and_wait(topic, value=value, key=key, headers=list(headers),
                                                partition=partition)
            produced.append(Produced(meta.partition, meta.offset, key, value, tuple(headers)))
        return produced
    finally:
        await producer.stop()


async def dead_letters(bootstrap_servers: str, topic: str, group_id: str, expected: int,
                       timeout_s: float = 60) -> list[ConsumerRecord[bytes, bytes]]:
    """The dead letters written by `group_id`, once `expected` of them are there."""
    reader = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest",
                              group_id=None, enable_auto_commit=False, fetch_max_bytes=10_000_000,
                              max_partition_fetch_bytes=10_000_000)
    await reader.start()
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(found) < expected:
                for records in (await reader.getmany(timeout_ms=500)).values():
                    found.extend(r for r in records if (b"dlq-consumer-group", group_id.encode())
                                 in [(n.encode(), v) for n, v in r.headers])
    finally:
        await reader.stop()
    return found


async def begin_at_end(bootstrap_servers: str, group_id: str, topic: str = APPOINTMENTS) -> None:
    """Commit `group_id` at the end of `topic`: the group reads only what is produced from now on, not
    the records other tests of the session left on the shared broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group_id, enable_auto_commit=False)
    await admin.start()
    await reader.start()
    try:
        [description] = await admin.describe_topics([topic])
        partitions = [TopicPartition(topic, p["partition"]) for p in description["partitions"]]
        assert partitions, f"{topic} has no partitions"
        reader.assign(partitions)
        await reader.commit(await reader.end_offsets(partitions))
    finally:
        await reader.stop()
        await admin.close()


async def group_lag(bootstrap_servers: str, group_id: str, topic: str = APPOINTMENTS) -> int:
    """Records on `topic` the group has not committed past."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None)
    await admin.start()
    await reader.start()
    try:
        [description] = await admin.describe_topics([topic])
        partitions = [TopicPartition(topic, p["partition"]) for p in description["partitions"]]
        assert partitions, f"{topic} has no partitions"
        ends = await reader.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group_id, partitions=partitions)
        return sum(ends[tp] - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0)
                   for tp in partitions)
    finally:
        await reader.stop()
        await admin.close()


async def until_lag_is_zero(bootstrap_servers: str, group_id: str, topic: str = APPOINTMENTS,
                            timeout_s: float = 60) -> None:
    lag = -1
    try:
        async with asyncio.timeout(timeout_s):
            while (lag := await group_lag(bootstrap_servers, group_id, topic)) != 0:
                await asyncio.sleep(0.5)
    except TimeoutError:
        raise AssertionError(f"the group's lag stayed at {lag}") from None
