"""Scheduler at scale, on PostgreSQL: a ledger of N pending messages written with COPY, a tenth of them
(100,000 of 1,000,000) due at the same instant, drained by the notifier process(es) to a fast SMTP sink;
drain rate next to the raw aiosmtplib rate over the same number of connections to the same sink,
lateness of the first 1,000 sent, the time one new message due now takes to go out among the rest,
the notifier's resident memory sampled throughout, and then how fast the notifier(s) on that ledger ingest
a batch of appointment events (patients consenting to email and SMS: each event records its messages into
the grown ledger, and its dispatcher sends the confirmations and notices meanwhile)."""
from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import uvloop
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from bench.channels import raw_smtp
from bench.end_to_end import start_notifier
from bench.harness.databases import new_postgres_database
from bench.harness.groups import partitions_of, start_groups_at_end
from bench.harness.machine import rss_mib, tree_rss_mib
from bench.harness.stack import SinkProcess, Stack
from bench.harness.stats import percentile
from bench.ingest import WORKLOADS, day_of_events, lag, produce
from services.notifier.migrations import MIGRATIONS
from shared.database import create_engine
from shared.schema_migrations import upgrade_to_head
from shared.templates.sample import sample_context
from shared.topics import APPOINTMENTS, CONSENT

POOL_SIZE = 4
LEAD_S = 5.0


def _row(n: int, due_at: datetime, now: datetime, context: Any, tag: str) -> tuple[Any, ...]:
    """A pending reminder: `context` as the writer takes it (JSON text for COPY, a dict for SQLAlchemy Core)."""
    return (f"{tag}-{n:08d}", f"apt-{tag}-{n:08d}", "reminder_24h", "email", 1, "reminder",
            f"{tag}-{n}@example.com", "en-CA", context, due_at, due_at, None, "pending", 0, now, now)


COLUMNS = ["id", "appointment_id", "step", "channel", "appointment_version", "template", "recipient", "locale",
           "context", "scheduled_for", "due_at", "expires_at", "status", "attempts", "created_at", "updated_at"]


async def fill_ledger(url: str, total: int, due: int, tag: str) -> dict[str, Any]:
    """COPY `total` pending rows: the first `due` parked far ahead, the rest spread over the coming
    month; returns the COPY's rate. `release` later makes the parked ones due at one instant."""
    engine = create_engine(url)
    await upgrade_to_head(engine, MIGRATIONS)  # as the notifier makes its schema
    await engine.dispose()
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    context = json.dumps(sample_context("physiotherapy", "en-CA", "reminder"), default=str)
    now = datetime.now(UTC)
    parked = now + timedelta(days=365)
    started = time.monotonic()
    chunk = 50_000
    try:
        for first in range(0, total, chunk):
            records = [_row(n, parked if n < due else now + timedelta(days=1, seconds=n % 2_592_000), now,
                            context, tag) for n in range(first, min(total, first + chunk))]
            await connection.copy_records_to_table("deliveries", records=records, columns=COLUMNS)
        await connection.execute("ANALYZE deliveries")
    finally:
        await connection.close()
    seconds = time.monotonic() - started
    return {"rows": total, "insert_s": seconds, "insert_rows_per_s": total / seconds}


async def release(url: str, due: int, tag: str, at: datetime) -> None:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute("UPDATE deliveries SET due_at = $1, scheduled_for = $1 WHERE id < $2",
                                 at, f"{tag}-{due:08d}")
    finally:
        await connection.close()


async def add_one_due_now(url: str, tag: str) -> str:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    context = json.dumps(sample_context("physiotherapy", "en-CA", "reminder"), default=str)
    now = datetime.now(UTC)
    try:
        await connection.copy_records_to_table("deliveries", records=[_row(99_999_999, now, now, context, tag)],
                                               columns=COLUMNS)
    finally:
        await connection.close()
    return f"{tag}-99999999@example.com"


async def lateness_of_first(url: str, count: int) -> list[float]:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await connection.fetch("SELECT extract(epoch FROM sent_at - due_at) AS late FROM deliveries "
                                      "WHERE sent_at IS NOT NULL ORDER BY sent_at LIMIT $1", count)
    finally:
        await connection.close()
    return [float(row["late"]) for row in rows]


class RssSampler:
    def __init__(self, pids: list[int], with_children: bool = False) -> None:
        """`with_children`: count each process's children too (a Celery worker's prefork pool)."""
        self.pids = pids
        self.measure = tree_rss_mib if with_children else rss_mib
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            values = [self.measure(pid) for pid in self.pids]
            self.samples.append(sum(value or 0.0 for value in values))


async def ingest_rate(bootstrap_servers: str, group: str, appointments: int) -> dict[str, Any]:
    """Book, reschedule and complete `appointments` appointments (3 events each, a patient each); the
    time from the first event's production until the notifiers' group has committed the last."""
    partitions = await partitions_of(bootstrap_servers)
    offsets = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None)
    await offsets.start()
    try:
        day = day_of_events(appointments, uuid.uuid4().hex[:8], WORKLOADS["consenting"])
        began = time.perf_counter()
        await produce(bootstrap_servers, day)
        ends = await offsets.end_offsets(partitions)
    finally:
        await offsets.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        while await lag(admin, ends, group):
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
    seconds = time.perf_counter() - began
    return {"ingest_events": len(day), "ingest_s": seconds, "ingest_per_s": len(day) / seconds}


def _wait_sent(sink: SinkProcess, tag: str, count: int, timeout: float, since: float = 0.0) -> list[float]:
    deadline = time.monotonic() + timeout
    while True:
        stamps = [mail["at"] for mail in sink.mails() if mail["at"] >= since and mail["to"][0].startswith(tag)]
        if len(stamps) >= count or time.monotonic() > deadline:
            return stamps
        time.sleep(0.5)


def one_case(stack: Stack, total: int, due: int, instances: int, drain_timeout: float,
             ingest_appointments: int) -> dict[str, Any]:
    postgres = stack.ensure_postgres()
    sink = stack.start_sink(f"scale-sink-{total}-{instances}")
    sandbox = stack.start_sandbox(f"scale-sandbox-{total}-{instances}")
    url = asyncio.run(new_postgres_database(postgres, "scale"))
    tag = "s" + uuid.uuid4().hex[:5]
    filled = asyncio.run(fill_ledger(url, total, due, tag))
    group = f"notifier-{uuid.uuid4().hex[:6]}"
    bootstrap = stack.ensure_kafka().bootstrap_servers
    # The group reads only this case's events, not those an earlier case ingested.
    asyncio.run(start_groups_at_end(bootstrap, {group: APPOINTMENTS, f"{group}.consent": CONSENT}))
    notifiers = [start_notifier(stack, sink, url, name=f"scale-notifier-{total}-{i}", group_id=group,
                                sandbox=sandbox, extra={"SMTP_POOL_SIZE": str(POOL_SIZE)})
                 for i in range(instances)]
    pids = [service.process.pid for service in notifiers]
    with RssSampler(pids) as sampler:
        due_at = datetime.now(UTC) + timedelta(seconds=LEAD_S)
        asyncio.run(release(url, due, tag, due_at))
        stamps = _wait_sent(sink, tag, due, drain_timeout)
        drained = len(stamps)
        drain_s = max(stamps) - due_at.timestamp() if stamps else None
        late = sorted(asyncio.run(lateness_of_first(url, 1000)))
        received = Counter(mail["to"][0] for mail in sink.mails() if mail["to"][0].startswith(tag))
        sink.forget()
        time.sleep(1.0)
        added_at = time.time()
        asyncio.run(add_one_due_now(url, tag))
        one = _wait_sent(sink, tag, 1, 60.0, since=added_at)
        ingested = uvloop.run(ingest_rate(bootstrap, group, ingest_appointments))
    for service in notifiers:
        service.stop()
    stack.stop(sink)
    stack.stop(sandbox)
    return filled | {
        "due_at_once": due, "instances": instances, "drained": drained, "drain_s": drain_s,
        "drain_per_s": drained / drain_s if drain_s else None,
        "distinct_recipients": len(received), "duplicated": sum(1 for n in received.values() if n > 1),
        "first_1000_lateness_p99_s": percentile(late, 0.99),
        "one_new_due_now_sent_after_s": min(one) - added_at if one else None,
        "notifier_rss_mib_max": max(sampler.samples, default=None),
        "notifier_rss_mib_first": sampler.samples[0] if sampler.samples else None,
        "notifier_rss_mib_last": sampler.samples[-1] if sampler.samples else None,
    } | ingested


def channel_rate(stack: Stack, count: int) -> float:
    """Raw aiosmtplib over the notifier's number of connections to a fresh sink process: the channel's rate."""
    sink = stack.start_sink("scale-raw-sink")
    started = uvloop.run(raw_smtp(sink.port, POOL_SIZE, count))
    stamps = [mail["at"] for mail in sink.mails()]
    stack.stop(sink)
    return len(stamps) / (max(stamps) - started)


# Ledger sizes, the most due at once (a tenth of the ledger up to it), notifier instances, appointments
# whose events (3 each) are ingested on the grown ledger.
SIZES: dict[str, tuple[list[int], int, tuple[int, ...], int]] = {
    "quick": ([2_000], 100, (1, 2), 50),
    "medium": ([10_000, 100_000], 1_000, (1, 2), 500),
    "full": ([10_000, 100_000, 1_000_000], 100_000, (1, 2, 4), 1_000),
}


def run(stack: Stack, form: str, scales: list[int] | None = None, instances: tuple[int, ...] | None = None
        ) -> dict[str, Any]:
    default_scales, most_due, default_instances, ingest_appointments = SIZES[form]
    scales = scales or default_scales
    instances = instances or default_instances
    drain_timeout = 60.0 if form == "quick" else 3600.0
    rows = [one_case(stack, total, min(most_due, max(1, total // 10)), 1, drain_timeout, ingest_appointments)
            for total in scales]
    smallest = min(scales)
    instance_rows = [one_case(stack, smallest, min(most_due, max(1, smallest // 10)), count, drain_timeout,
                              ingest_appointments) for count in instances if count > 1]
    return {"rows": rows, "instances": [rows[scales.index(smallest)], *instance_rows],
            "channel_rate_per_s": channel_rate(stack, 200 if form == "quick" else 2000), "pool_size": POOL_SIZE}
