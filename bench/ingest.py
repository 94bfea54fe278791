"""How fast the notifier and aftercare ingest appointment events, each next to a raw aiokafka consumer
reading the same records in the same run.

A day of a busy clinic, compressed: A appointments, each with a patient of its own (their own email and
phone), are booked, then all rescheduled, then all completed (3·A events, in that order, so every
reschedule and completion finds its appointment stored by an earlier batch, as in production where they
are days apart). Two workloads, each on events of its own:

- consenting: the patients agreed to email and SMS, so every event records what it should: states,
  ledger rows (confirmations, guidance, reminders, notices, aftercare advice, check-ins), cancellations,
  outbox rows (about 4 ledger rows per event for the notifier);
- silent: the patients agreed to nothing, so only the appointments' states (and aftercare's upcoming
  visits) are recorded: the ingest path itself (reading, deciding, the state rules, the commits).

Each service is built by its own `bootstrap.build` and run by its `bootstrap.run` as deployed (logging
at INFO, as JSON, to a file), on a fresh SQLite database, its consumer group starting at the first
record of the workload. It is timed from its broker start until its group has committed every record,
and from its first commit (its group joined, a first batch applied) until then: the steady rate. Its
dispatcher runs too, but the providers hold each send until the timing is over: the dispatcher holds
its first few messages in flight and sends nothing, so the figure is ingestion, not sending. A raw
aiokafka consumer reads the same records right before each service (no parsing, no database).
Measures and prints; asserts nothing.

    .venv/bin/python -m bench.ingest [--events 30000] [--services notifier,aftercare]
                                     [--workloads consenting,silent] [--bootstrap HOST:PORT]

Without --bootstrap a throwaway broker is started (deploy/kafka/kafka.sh) and stopped afterwards.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.harness import machine
from bench.harness.groups import partitions_of, start_group_at
from services.aftercare import bootstrap as aftercare
from services.aftercare.settings import AftercareSettings
from services.notifier import bootstrap as notifier
from services.notifier.settings import NotifierSettings
from shared.channels.messages import EmailMessage, SmsMessage
from shared.events.appointment import AppointmentCompleted, AppointmentEvent
from shared.events.patient import ChannelConsent
from shared.kafka_admin import ensure_topics
from shared.observability import configure_logging
from shared.settings import CommonSettings, DeliverySettings, KafkaSettings, TwilioSettings
from shared.topics import APPOINTMENTS
from tests.support.events import booked, patient, rescheduled
from tests.support.kafka_server import free_port, start_kafka

SERVICES = ("notifier", "aftercare")
WORKLOADS = {"consenting": ChannelConsent(email=True, sms=True), "silent": ChannelConsent(email=False, sms=False)}
SIZES = {"quick": 1_500, "medium": 15_000, "full": 60_000}
AREA_CODES = ("416", "647", "437", "905", "289", "365")  # 10,000 fake 555 numbers each
LINK_SECRET = "a-bench-secret-of-at-least-32-bytes!"


class HeldProvider:
    """A provider that answers only once the timing is over: the dispatcher keeps its first sends in
    flight and starts no more, so it costs the service no more than waiting does."""

    def __init__(self) -> None:
        self.released = asyncio.Event()

    async def send(self, message: EmailMessage | SmsMessage) -> str:
        await self.released.wait()
        return f"bench-{uuid.uuid4().hex}"


def day_of_events(appointments: int, run_id: str, consent: ChannelConsent) -> list[AppointmentEvent]:
    """Every appointment booked, then every one rescheduled, then every one completed."""
    starts = datetime.now(UTC) + timedelta(days=3)
    bookings = []
    for n in range(appointments):
        who = patient(patient_id=f"pt-{run_id}-{n}", email=f"patient{n}.{run_id}@example.com",
                      phone=f"+1{AREA_CODES[n // 10_000 % len(AREA_CODES)]}555{n % 10_000:04d}", consent=consent)
        bookings.append(booked(f"apt-{run_id}-{n}", starts + timedelta(minutes=n % 600), who=who))
    moved = [rescheduled(b, b.appointment.starts_at + timedelta(hours=1), sequence=2) for b in bookings]
    done = [AppointmentCompleted(occurred_at=datetime.now(UTC), appointment_id=m.appointment_id, sequence=3,
                                 location_id=m.location_id, patient=m.patient, appointment=m.appointment,
                                 completed_at=m.appointment.ends_at) for m in moved]
    return [*bookings, *moved, *done]


async def produce(bootstrap_servers: str, events: list[AppointmentEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=20, acks="all",
                                enable_idempotence=True)
    await producer.start()
    try:
        pending = [await producer.send(APPOINTMENTS, key=event.appointment_id.encode(),
                                       value=event.model_dump_json().encode()) for event in events]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def raw_read(bootstrap_servers: str, starts: dict[TopicPartition, int], total: int) -> float:
    """Seconds a bare aiokafka consumer takes to read the run's `total` records."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False)
    await reader.start()
    try:
        reader.assign(list(starts))
        for tp, offset in starts.items():
            reader.seek(tp, offset)
        began, read = time.perf_counter(), 0
        while read < total:
            for records in (await reader.getmany(timeout_ms=500, max_records=500)).values():
                read += len(records)
        return time.perf_counter() - began
    finally:
        await reader.stop()


async def lag(admin: AIOKafkaAdminClient, ends: dict[TopicPartition, int], group: str) -> int:
    committed = await admin.list_consumer_group_offsets(group, partitions=list(ends))
    return sum(end - max(committed[tp].offset, 0) if tp in committed else end for tp, end in ends.items())


def kafka_and_delivery(bootstrap_servers: str) -> dict[str, Any]:
    return {
        "common": CommonSettings(kafka=KafkaSettings(bootstrap_servers=bootstrap_servers)),
        "delivery": DeliverySettings(link_secret=LINK_SECRET, twilio=TwilioSettings(api_base_url="http://127.0.0.1:9")),
    }


@dataclass(frozen=True)
class Drain:
    seconds: float  # from the broker start until every record was committed
    first_commit_s: float  # from the broker start until the group's first commit (joining, a first batch)
    steady_per_s: float  # the records committed after the first commit, over the time they took


async def drain(service: str, bootstrap_servers: str, database_url: str, ends: dict[TopicPartition, int],
                starts: dict[TopicPartition, int]) -> Drain:
    """How long the service took, from its broker start, to commit every record of the run; and how fast
    it went once its group had joined and committed a first batch."""
    group = f"bench-{service}-{uuid.uuid4().hex[:8]}"
    await start_group_at(bootstrap_servers, group, starts)
    email, sms = HeldProvider(), HeldProvider()
    serve: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
    if service == "notifier":
        parts = notifier.build(NotifierSettings(database_url=database_url, group_id=group, metrics_port=None,
                                                http_port=free_port(), **kafka_and_delivery(bootstrap_servers)),
                               email=email, sms=sms)
        broker = parts.broker

        def serve(stop: asyncio.Event) -> Coroutine[Any, Any, None]:
            return notifier.run(parts, stop)
    else:
        after = aftercare.build(AftercareSettings(database_url=database_url, group_id=group, metrics_port=None,
                                                  http_port=free_port(), **kafka_and_delivery(bootstrap_servers)),
                                email=email, sms=sms)
        broker = after.broker

        def serve(stop: asyncio.Event) -> Coroutine[Any, Any, None]:
            return aftercare.run(after, stop)
    stop = asyncio.Event()
    running = asyncio.create_task(serve(stop))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        while not broker.running:
            if running.done():
                running.result()
            await asyncio.sleep(0.01)
        began = time.perf_counter()
        total = sum(end - starts[tp] for tp, end in ends.items())
        first: tuple[float, int] | None = None
        while left := await lag(admin, ends, group):
            if first is None and left < total:
                first = time.perf_counter(), left
            if running.done():
                running.result()
            await asyncio.sleep(0.05)
        finished = time.perf_counter()
        first_at, left_then = first or (began, total)
        return Drain(finished - began, first_at - began, left_then / max(finished - first_at, 1e-9))
    finally:
        await admin.close()
        email.released.set()
        sms.released.set()
        stop.set()
        await running


async def measure(bootstrap_servers: str, events: int, workdir: Path, services: tuple[str, ...] = SERVICES,
                  workloads: tuple[str, ...] = tuple(WORKLOADS)) -> dict[str, Any]:
    """For each workload, produce its events, then for each service: the raw consumer's read of them, then
    the service's drain of them."""
    await ensure_topics(bootstrap_servers)
    partitions = await partitions_of(bootstrap_servers)
    rows: list[dict[str, Any]] = []
    for workload in workloads:
        offsets = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None)
        await offsets.start()
        try:
            starts = await offsets.end_offsets(partitions)
            day = day_of_events(max(events // 3, 1), uuid.uuid4().hex[:8], WORKLOADS[workload])
            began = time.perf_counter()
            await produce(bootstrap_servers, day)
            produced_s = time.perf_counter() - began
            ends = await offsets.end_offsets(partitions)
        finally:
            await offsets.stop()
        total = sum(ends[tp] - starts[tp] for tp in partitions)
        for service in services:
            load = machine.load_average()
            raw_s = await raw_read(bootstrap_servers, starts, total)
            drained = await drain(service, bootstrap_servers,
                                  f"sqlite+aiosqlite:///{workdir}/{service}-{workload}.db", ends, starts)
            rows.append({
                "service": service, "workload": workload, "events": total, "appointments": len(day) // 3,
                "produced_s": produced_s, "load_average": load, "raw_s": raw_s, "raw_per_s": total / raw_s,
                "service_s": drained.seconds, "service_per_s": total / drained.seconds,
                "share_of_raw": raw_s / drained.seconds, "first_commit_s": drained.first_commit_s,
                "steady_per_s": drained.steady_per_s, "steady_share_of_raw": drained.steady_per_s * raw_s / total,
            })
    return {"database": "sqlite", "partitions": len(partitions), "rows": rows}


def run(stack: Any, form: str) -> dict[str, Any]:
    """bench/run_all.py's section: on a broker of its own, so that no other benchmark's service (their
    groups read the appointments topic) ingests these patients' events."""
    del stack  # the other sections' broker is not used
    with tempfile.TemporaryDirectory(prefix="clinic-ingest-") as directory:
        workdir = Path(directory)
        server = start_kafka(workdir / "kafka")
        try:
            with service_logs(workdir / "services.log"):
                return uvloop.run(measure(server.bootstrap_servers, SIZES[form], workdir))
        finally:
            server.stop()


@contextlib.contextmanager
def service_logs(path: Path) -> Iterator[None]:
    """The services log as deployed (INFO, JSON) into a file, not onto the benchmark's terminal."""
    root = logging.getLogger()
    saved_stderr, saved_handlers, saved_level = sys.stderr, root.handlers[:], root.level
    with path.open("w") as file:
        root.handlers.clear()
        sys.stderr = file
        configure_logging("INFO", json=True)
        try:
            yield
        finally:
            sys.stderr = saved_stderr
            root.handlers[:] = saved_handlers
            root.setLevel(saved_level)
            configure_logging("WARNING", json=True)


def print_rows(result: dict[str, Any]) -> None:
    print(f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
          f"{machine.describe()['cpu_model']}; database: {result['database']}; "
          f"{APPOINTMENTS}: {result['partitions']} partitions")
    for row in result["rows"]:
        print(f"{row['workload']}: {row['events']} records of {row['appointments']} appointments, "
              f"load average {row['load_average']}:")
        print(f"  raw aiokafka consumer: {row['raw_per_s']:10,.0f} events/s ({row['raw_s']:.2f} s)")
        print(f"  {row['service'] + ' consumer:':22}{row['service_per_s']:10,.0f} events/s ({row['service_s']:.2f} s), "
              f"{100 * row['share_of_raw']:.1f}% of the raw rate; after its first commit "
              f"({row['first_commit_s']:.2f} s): {row['steady_per_s']:,.0f} events/s, "
              f"{100 * row['steady_share_of_raw']:.1f}% of the raw rate")


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--services", default=",".join(SERVICES), help=f"some of {','.join(SERVICES)}")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"some of {','.join(WORKLOADS)}")
    parser.add_argument("--bootstrap", help="an existing broker; default: start one")
    args = parser.parse_args()
    services = tuple(name for name in args.services.split(",") if name)
    workloads = tuple(name for name in args.workloads.split(",") if name)
    with tempfile.TemporaryDirectory(prefix="clinic-ingest-") as workdir:
        log_path = Path(workdir) / "services.log"
        with service_logs(log_path):
            server = None if args.bootstrap else await asyncio.to_thread(start_kafka, Path(workdir) / "kafka")
            try:
                result = await measure(args.bootstrap or (server.bootstrap_servers if server else ""), args.events,
                                       Path(workdir), services, workloads)
            finally:
                if server is not None:
                    server.stop()
        lines = sum(1 for _ in log_path.open())
    print_rows(result)
    print(f"services' log: {lines} lines at INFO")


if __name__ == "__main__":
    uvloop.run(main())  # the services run on uvloop as deployed (`shared.process.run_service`)
