"""Ingest as the ledger grows: the notifier's event handler applying the same appointment events to ledgers
already holding 0 to 1,000,000 messages, and which of its statements take the time at each size.

On PostgreSQL (the default) the ledger holds pending messages, filled with COPY (`scheduler_scale.fill_ledger`,
the scheduler benchmark's rows); with `--database sqlite`, the embedded default, half of them are pending
and half sent (a clinic's ledger keeps what it sent), inserted through SQLAlchemy Core into the notifier's
own database file. The schema is made by the notifier's migrations; the events are `ingest.py`'s
consenting workload (each appointment booked, rescheduled, completed; patients agreeing to email and SMS,
so every event records or cancels messages), applied by `AppointmentEventHandler.handle_batch` in batches
as the consumer hands them over.
No broker and no dispatcher: the handler's own work against the grown tables. Measures and prints;
asserts nothing.

    .venv/bin/python -m bench.ingest_growth [--rows 0,100000,1000000] [--appointments 1000] [--batch 20]
                                            [--database postgresql|sqlite]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.harness.databases import new_postgres_database
from bench.harness.machine import describe
from bench.ingest import WORKLOADS, HeldProvider, day_of_events, kafka_and_delivery
from bench.scheduler_scale import COLUMNS, _row, fill_ledger
from services.notifier import bootstrap
from services.notifier.migrations import MIGRATIONS
from services.notifier.settings import NotifierSettings
from shared.database import create_engine
from shared.ledger.model import DeliveryStatus
from shared.ledger.tables import deliveries
from shared.schema_migrations import upgrade_to_head
from shared.templates.sample import sample_context
from tests.support.postgres_server import PostgresServer, start_postgres


async def fill_sqlite_ledger(url: str, total: int, tag: str) -> None:
    """`total` rows in the notifier's SQLite database: even ones pending over the coming month, odd ones sent."""
    engine = create_engine(url)
    await upgrade_to_head(engine, MIGRATIONS)
    context = json.loads(json.dumps(sample_context("physiotherapy", "en-CA", "reminder"), default=str))
    now = datetime.now(UTC)
    try:
        for first in range(0, total, 50_000):
            rows = []
            for n in range(first, min(total, first + 50_000)):
                row = dict(zip(COLUMNS, _row(n, now + timedelta(days=1, seconds=n % 2_592_000), now, context, tag),
                               strict=True))
                if n % 2:
                    row.update(status=DeliveryStatus.SENT.value, sent_at=now - timedelta(days=1), attempts=1)
                rows.append(row)
            async with engine.begin() as connection:
                await connection.execute(deliveries.insert(), rows)
    finally:
        await engine.dispose()


async def one_size(server: PostgresServer | None, rows: int, appointments: int, batch: int,
                   folder: Path) -> dict[str, Any]:
    tag = "g" + uuid.uuid4().hex[:5]
    if server is None:
        url = f"sqlite+aiosqlite:///{folder}/growth-{tag}.db"
        await fill_sqlite_ledger(url, rows, tag)
    else:
        url = await new_postgres_database(server, "growth")
        if rows:
            await fill_ledger(url, rows, 0, tag)
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


async def measure(sizes: list[int], appointments: int, batch: int, database: str) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="clinic-ingest-growth-") as directory:
        if database == "sqlite":
            return [await one_size(None, rows, appointments, batch, Path(directory)) for rows in sizes]
        server = start_postgres(Path(directory) / "postgres")
        try:
            return [await one_size(server, rows, appointments, batch, Path(directory)) for rows in sizes]
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="0,100000,1000000", help="messages already in the ledger")
    parser.add_argument("--appointments", type=int, default=1000, help="appointments (3 events each) per size")
    parser.add_argument("--batch", type=int, default=20, help="events per batch")
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()
    print(f"machine: {describe()}")
    print(f"database: {args.database}")
    results = asyncio.run(measure([int(n) for n in args.rows.split(",")], args.appointments, args.batch,
                                  args.database))
    print("| ledger rows | events | batch | events/s | slowest statements (total ms, count) |")
    print("|---|---|---|---|---|")
    for r in results:
        slowest = "; ".join(f"{s['statement']} {s['ms']:.0f} ms, {s['count']} times" for s in r["statements"][:3])
        print(f"| {r['ledger_rows']:,} | {r['events']:,} | {r['batch']} | {r['events_per_s']:,.0f} | {slowest} |")


if __name__ == "__main__":
    main()
