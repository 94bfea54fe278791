"""How fast the notifier ingests appointment events, next to a raw aiokafka consumer on the same topic.

N booking events (half as many appointments, each booked then rescheduled; the patients consent to
nothing, so nothing is sent) are produced first. Then the notifier built by
`services.notifier.bootstrap.build` drains them (batches, one transaction and one offset commit per
batch), timed from its broker start until its group's lag is 0; a raw aiokafka consumer reads the same
records in the same run. Measures and prints; asserts nothing.

    .venv/bin/python -m bench.ingest [--events 20000] [--bootstrap HOST:PORT] [--database-url URL]

Without --bootstrap a throwaway broker is started (deploy/kafka/kafka.sh) and stopped afterwards.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.notifier import bootstrap
from services.notifier.settings import NotifierSettings
from shared.channels.messages import EmailMessage, SmsMessage
from shared.events.patient import ChannelConsent
from shared.kafka_admin import ensure_topics
from shared.observability import configure_logging
from shared.settings import CommonSettings, DeliverySettings, KafkaSettings, TwilioSettings
from shared.topics import APPOINTMENTS
from tests.support.events import booked, patient, rescheduled
from tests.support.kafka_server import free_port, start_kafka


class NothingIsSent:
    async def send(self, message: EmailMessage | SmsMessage) -> str:
        raise AssertionError("the patients consent to nothing")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


async def produce(bootstrap_servers: str, events: int, run_id: str) -> None:
    silent = patient(consent=ChannelConsent(email=False, sms=False))
    starts = datetime.now(UTC) + timedelta(days=3)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=20, acks="all",
                                enable_idempotence=True)
    await producer.start()
    try:
        pending = []
        for n in range(events // 2):
            first = booked(f"apt-{run_id}-{n}", starts, who=silent)
            for event in (first, rescheduled(first, starts + timedelta(hours=1), sequence=2)):
                pending.append(await producer.send(APPOINTMENTS, key=event.appointment_id.encode(),
                                                   value=event.model_dump_json().encode()))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def partitions_of(bootstrap_servers: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        [description] = await admin.describe_topics([APPOINTMENTS])
        return [TopicPartition(APPOINTMENTS, p["partition"]) for p in description["partitions"]]
    finally:
        await admin.close()


async def topic_size(reader: AIOKafkaConsumer, partitions: list[TopicPartition]) -> int:
    return sum((await reader.end_offsets(partitions)).values())


async def raw_read(bootstrap_servers: str, total: int) -> float:
    """Seconds a bare aiokafka consumer takes to read `total` records from the start."""
    reader = AIOKafkaConsumer(APPOINTMENTS, bootstrap_servers=bootstrap_servers, group_id=None,
                              auto_offset_reset="earliest", enable_auto_commit=False)
    await reader.start()
    try:
        began, read = time.perf_counter(), 0
        while read < total:
            for records in (await reader.getmany(timeout_ms=500, max_records=500)).values():
                read += len(records)
        return time.perf_counter() - began
    finally:
        await reader.stop()


async def lag(admin: AIOKafkaAdminClient, reader: AIOKafkaConsumer, group: str,
              partitions: list[TopicPartition]) -> int:
    ends = await reader.end_offsets(partitions)
    committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    return sum(ends[tp] - max(committed[tp].offset, 0) if tp in committed else ends[tp] for tp in partitions)


async def notifier_drain(bootstrap_servers: str, database_url: str, reader: AIOKafkaConsumer,
                         partitions: list[TopicPartition]) -> float:
    """Seconds from the notifier's broker start until its group has committed every record."""
    group = f"bench-{uuid.uuid4().hex[:8]}"
    settings = NotifierSettings(
        database_url=database_url, group_id=group, metrics_port=None, http_port=free_port(),
        common=CommonSettings(kafka=KafkaSettings(bootstrap_servers=bootstrap_servers)),
        delivery=DeliverySettings(link_secret="a-bench-secret-of-at-least-32-bytes!",
                                  twilio=TwilioSettings(api_base_url="http://127.0.0.1:9")),
    )
    parts = bootstrap.build(settings, email=NothingIsSent(), sms=NothingIsSent())
    stop = asyncio.Event()
    running = asyncio.create_task(bootstrap.run(parts, stop))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        while not parts.broker.running:
            if running.done():
                running.result()
            await asyncio.sleep(0.01)
        began = time.perf_counter()
        while await lag(admin, reader, group, partitions):
            await asyncio.sleep(0.1)
        return time.perf_counter() - began
    finally:
        await admin.close()
        stop.set()
        await running


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--bootstrap", help="an existing broker; default: start one")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()
    configure_logging("WARNING", json=True)

    with tempfile.TemporaryDirectory() as workdir:
        server = None if args.bootstrap else await asyncio.to_thread(start_kafka, Path(workdir) / "kafka")
        bootstrap_servers = args.bootstrap or (server.bootstrap_servers if server else "")
        try:
            await ensure_topics(bootstrap_servers)
            began = time.perf_counter()
            await produce(bootstrap_servers, args.events, uuid.uuid4().hex[:8])
            produced_s = time.perf_counter() - began
            offsets = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None)
            await offsets.start()
            partitions = await partitions_of(bootstrap_servers)
            total = await topic_size(offsets, partitions)
            raw_s = await raw_read(bootstrap_servers, total)
            database_url = args.database_url or f"sqlite+aiosqlite:///{workdir}/notifier.db"
            notifier_s = await notifier_drain(bootstrap_servers, database_url, offsets, partitions)
            await offsets.stop()
        finally:
            if server is not None:
                server.stop()

    print(f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}")
    print(f"database: {database_url.split(':', 1)[0]}; records on {APPOINTMENTS}: {total} "
          f"({args.events} produced in {produced_s:.1f} s)")
    print(f"raw aiokafka consumer: {total / raw_s:10,.0f} events/s ({raw_s:.2f} s)")
    print(f"notifier consumer:     {total / notifier_s:10,.0f} events/s ({notifier_s:.2f} s), "
          f"{100 * raw_s / notifier_s:.0f}% of the raw rate")


if __name__ == "__main__":
    asyncio.run(main())
