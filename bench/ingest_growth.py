"""Ingest as the ledger grows, on PostgreSQL: the notifier's event handler applying the same appointment
events to ledgers already holding 0 to 1,000,000 pending messages, and which of its statements take the
time at each size.

The ledger is filled with COPY (`scheduler_scale.fill_ledger`, the scheduler benchmark's rows), the schema
made by the notifier's migrations; the events are `ingest.py`'s consenting workload (each appointment
booked, rescheduled, completed; patients agreeing to email and SMS, so every event records or cancels
messages), applied by `AppointmentEventHandler.handle_batch` in batches as the consumer hands them over.
No broker and no dispatcher: the handler's own work against the grown tables. Measures and prints;
asserts nothing.

    .venv/bin/python -m bench.ingest_growth [--rows 0,100000,1000000] [--appointments 1000] [--batch 20]
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.harness.databases import new_postgres_database
from bench.harness.machine import describe
from bench.ingest import WORKLOADS, HeldProvider, day_of_events, kafka_and_delivery
from bench.scheduler_scale import fill_ledger
from services.notifier import bootstrap
from services.notifier.migrations import MIGRATIONS
from services.notifier.settings import NotifierSettings
from shared.schema_migrations import upgrade_to_head
from tests.support.postgres_server import PostgresServer, start_postgres


async def one_size(server: PostgresServer, rows: int, appointments: int, batch: int) -> dict[str, Any]:
    url = await new_postgres_database(server, "growth")
    if rows:
        await fill_ledger(url, rows, 0, "g" + uuid.uuid4().hex[:5])
    parts = bootstrap.build(NotifierSettings(database_url=url, group_id="ingest-growth", metrics_port=None,
                                             http_port=0, **kafka_and_delivery("127.0.0.1:9")),
                            email=HeldProvider(), sms=HeldProvider())
    await upgrade_to_head(parts.engine, MIGRATIONS)
    seconds: dict[str, float] = defaultdict(float)
    counts: Counter[str] = Counter()
    started: dict[int, float] = {}

    def before(_connection: Any, cursor: Any, *_: Any) -> None:
        started[id(cursor)] = time.perf_counter()

    def after(_connection: Any, cursor: Any, statement: str, *_: Any) -> None:
        kind = " ".join(statement.split()[:3])
        seconds[kind] += time.perf_counter() - started.pop(id(cursor), time.perf_counter())
        counts[kind] += 1

    event.listen(parts.engine.sync_engine, "before_cursor_execute", before)
    event.listen(parts.engine.sync_engine, "after_cursor_execute", after)
    events = day_of_events(appointments, uuid.uuid4().hex[:8], WORKLOADS["consenting"])
    began = time.perf_counter()
    for first in range(0, len(events), batch):
        await parts.handler.handle_batch(events[first:first + batch])
    took = time.perf_counter() - began
    await parts.engine.dispose()
    return {"ledger_rows": rows, "events": len(events), "batch": batch, "seconds": took,
            "events_per_s": len(events) / took,
            "statements": [{"statement": kind, "count": counts[kind], "ms": 1000 * spent}
                           for kind, spent in sorted(seconds.items(), key=lambda item: -item[1])[:6]]}


async def measure(sizes: list[int], appointments: int, batch: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="clinic-ingest-growth-") as directory:
        server = start_postgres(Path(directory) / "postgres")
        try:
            return [await one_size(server, rows, appointments, batch) for rows in sizes]
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="0,100000,1000000", help="pending messages already in the ledger")
    parser.add_argument("--appointments", type=int, default=1000, help="appointments (3 events each) per size")
    parser.add_argument("--batch", type=int, default=20, help="events per batch")
    args = parser.parse_args()
    print(f"machine: {describe()}")
    results = asyncio.run(measure([int(n) for n in args.rows.split(",")], args.appointments, args.batch))
    print("| ledger rows | events | batch | events/s | slowest statements (total ms, count) |")
    print("|---|---|---|---|---|")
    for r in results:
        slowest = "; ".join(f"{s['statement']} {s['ms']:.0f} ms, {s['count']} times" for s in r["statements"][:3])
        print(f"| {r['ledger_rows']:,} | {r['events']:,} | {r['batch']} | {r['events_per_s']:,.0f} | {slowest} |")


if __name__ == "__main__":
    main()
