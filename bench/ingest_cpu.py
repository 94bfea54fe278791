"""CPU per event of a consumer applying appointment events, without a broker: the cost `bench/ingest.py`
cannot separate from the network and the other processes on the machine.

Each service is built by its own `bootstrap.build` on a fresh SQLite database (its migrations applied),
its providers holding every send; the same compressed clinic day as `bench/ingest.py` (each appointment
booked, rescheduled, then completed; consenting or silent patients) is handed, as Kafka records held in
memory, to the service's `EventConsumer` in batches of 2,000, with an offset commit that does nothing.
It prints the process's CPU per event (the main thread's and the database threads'), the main thread's
alone, and the rate; it asserts nothing. Logs go to a file, as deployed (JSON, INFO).

    .venv/bin/python -m bench.ingest_cpu [--events 9000] [--services notifier,aftercare]
                                         [--workloads consenting,silent] [--profile DIR]

With --profile, each case also writes a cProfile of the main thread (`DIR/<service>-<workload>.prof`).
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from bench.ingest import LINK_SECRET, WORKLOADS, HeldProvider, day_of_events
from services.aftercare import bootstrap as aftercare
from services.aftercare import migrations as aftercare_migrations
from services.aftercare.settings import AftercareSettings
from services.notifier import bootstrap as notifier
from services.notifier import migrations as notifier_migrations
from services.notifier.settings import NotifierSettings
from shared.consumer import EventConsumer
from shared.observability import configure_logging
from shared.schema_migrations import upgrade_to_head
from shared.settings import CommonSettings, DeliverySettings, KafkaSettings, TwilioSettings
from shared.topics import APPOINTMENTS

SERVICES = ("notifier", "aftercare")
BATCH = 2000


class _CommitsNothing:
    """The consumer's side of aiokafka, for records held in memory."""

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        return None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        return None

    def highwater(self, tp: TopicPartition) -> int | None:
        return None


class _NoDeadLetters:
    async def send(self, topic: str, record: Any, headers: list[tuple[str, bytes]]) -> None:
        raise AssertionError("a bench event was refused: the workload is out of date with the contract")

    async def close(self) -> None:
        return None


def _common(database_url: str) -> dict[str, Any]:
    return {
        "database_url": database_url, "group_id": "bench-ingest-cpu", "metrics_port": None, "http_port": 1,
        "common": CommonSettings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9")),
        "delivery": DeliverySettings(link_secret=LINK_SECRET, twilio=TwilioSettings(api_base_url="http://127.0.0.1:9")),
    }


async def _built(service: str, database_url: str) -> tuple[Callable[[list[Any]], Awaitable[object]], Any]:
    """The service's batch handler and engine, built as deployed, on a migrated database."""
    if service == "notifier":
        parts = notifier.build(NotifierSettings(**_common(database_url)), email=HeldProvider(), sms=HeldProvider())
        await upgrade_to_head(parts.engine, notifier_migrations.MIGRATIONS)
        return parts.handler.handle_batch, parts.engine
    after = aftercare.build(AftercareSettings(**_common(database_url)), email=HeldProvider(), sms=HeldProvider())
    await upgrade_to_head(after.engine, aftercare_migrations.MIGRATIONS)
    return after.completed_visits.handle_batch, after.engine


async def measure(service: str, workload: str, events: int, profile: Path | None) -> str:
    folder = tempfile.mkdtemp(prefix="bench-ingest-cpu-")
    handle, engine = await _built(service, f"sqlite+aiosqlite:///{folder}/{service}.db")
    day = day_of_events(max(1, events // 3), uuid.uuid4().hex[:8], WORKLOADS[workload])
    records: list[ConsumerRecord[bytes, bytes]] = [
        ConsumerRecord(APPOINTMENTS, 0, offset, 0, 0, event.appointment_id.encode(), event.model_dump_json().encode(),
                       None, 0, 0, [])
        for offset, event in enumerate(day)
    ]
    del day
    gc.collect()
    consumer = EventConsumer(service=service, group_id="bench-ingest-cpu", handle_batch=handle,
                             dead_letters=_NoDeadLetters())
    kafka: Any = _CommitsNothing()
    reader: AIOKafkaConsumer = kafka
    profiler = cProfile.Profile(time.thread_time) if profile else None
    cpu, main_thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
    with profiler if profiler else contextlib.nullcontext():
        for first in range(0, len(records), BATCH):
            await consumer.consume(records[first:first + BATCH], reader)
    cpu, main_thread, wall = (time.process_time() - cpu, time.thread_time() - main_thread,
                              time.perf_counter() - wall)
    await engine.dispose()
    shutil.rmtree(folder, ignore_errors=True)
    if profiler and profile:
        profile.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(profile / f"{service}-{workload}.prof")
    n = len(records)
    return (f"| {service} | {workload} | {n:,} | {1000 * cpu / n:.3f} | {1000 * main_thread / n:.3f} | "
            f"{n / wall:,.0f} | {os.getloadavg()[0]:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=9000)
    parser.add_argument("--services", default=",".join(SERVICES), help=f"some of {','.join(SERVICES)}")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"some of {','.join(WORKLOADS)}")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of each case here")
    args = parser.parse_args()
    log = Path(tempfile.mkdtemp(prefix="bench-ingest-cpu-log-")) / "services.log"
    with log.open("w") as logs:
        sys.stderr = logs
        configure_logging("INFO", json=True)
        rows = [uvloop.run(measure(service, workload, args.events, args.profile))
                for service in args.services.split(",") for workload in args.workloads.split(",")]
        sys.stderr = sys.__stderr__
    print("| service | workload | events | CPU ms/event (process) | CPU ms/event (main thread) | events/s "
          "| load average |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nservice logs: {log}")


if __name__ == "__main__":
    main()
