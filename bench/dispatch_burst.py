"""Benchmark: N messages all due at the same instant, sent by one real Dispatcher on the system clock.

    .venv/bin/python bench/dispatch_burst.py --messages 1000
    .venv/bin/python bench/dispatch_burst.py --messages 1000 --database postgresql+asyncpg://user:pw@127.0.0.1:55432/db

Half the messages are emails (to an in-process SMTP sink), half SMS (to the Twilio sandbox on loopback).
Reports wall time, throughput, lateness (sent_at - due_at, read back from the ledger) and checks that
every message arrived exactly once. Not a test: it asserts nothing about speed.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from sandbox.smtp_sink import SmtpSink
from services.notifier.tables import SCHEMA as NOTIFIER_SCHEMA
from shared.channels.email import SmtpEmailSender
from shared.channels.sms import TwilioSmsSender
from shared.clinic_config import load_clinic_config
from shared.clock import SystemClock
from shared.database import create_engine, create_tables
from shared.delivery.compose import MessageComposer
from shared.delivery.dispatcher import Dispatcher
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.model import DeliveryIntent
from shared.ledger.suppressions import SuppressionList
from shared.ledger.tables import deliveries
from shared.links import PatientLinks
from shared.observability import configure_logging
from shared.templates.catalogue import TemplateCatalogue
from shared.templates.sample import sample_context
from tests.support.channels import ACCOUNT_SID, AUTH_TOKEN, CLINIC_NUMBER, start_twilio_sandbox

CLINIC = load_clinic_config(Path(__file__).resolve().parents[1] / "deploy" / "clinic.yaml")
LEAD = timedelta(seconds=3)  # recording finishes and the dispatcher is idle before the burst is due
FINISH_TIMEOUT_S = 600


def recipient(channel: str, n: int) -> str:
    return f"burst{n}@example.com" if channel == "email" else f"+1416{2_000_000 + n:07d}"


def intents(count: int, due_at: datetime) -> list[DeliveryIntent]:
    result = []
    for n in range(count):
        channel, locale = ("email", "sms")[n % 2], ("en-CA", "fr-CA")[(n // 2) % 2]
        context = sample_context("physiotherapy", locale, "reminder")
        result.append(DeliveryIntent(f"apt-burst-{n:05d}", "reminder_24h", channel, 1, "reminder",
                                     recipient(channel, n), locale, due_at, context))
    return result


@dataclass(frozen=True)
class BurstResult:
    counts: dict[str, int]
    late: list[float]  # seconds from due to sent, sorted
    wall: float  # seconds from the due instant to the last send


@asynccontextmanager
async def fresh_database(url: str | None) -> AsyncIterator[str]:
    """A new SQLite file, or a new database created (and dropped afterwards) on the given PostgreSQL server."""
    if url is None or url == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite+aiosqlite:///{directory}/burst.db"
        return
    import asyncpg

    server_dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    base, _, _ = url.rpartition("/")
    name = f"burst_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(server_dsn)
    await connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        await connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await connection.close()


async def wait_until_all_final(ledger: DeliveryLedger, count: int) -> dict[str, int]:
    deadline = time.monotonic() + FINISH_TIMEOUT_S
    while time.monotonic() < deadline:
        counts = await ledger.counts_by_status()
        if counts.get("pending", 0) + counts.get("sending", 0) == 0 and sum(counts.values()) == count:
            return counts
        await asyncio.sleep(0.2)
    raise TimeoutError(f"not all sent after {FINISH_TIMEOUT_S}s: {await ledger.counts_by_status()}")


async def lateness_seconds(engine: AsyncEngine) -> tuple[list[float], datetime]:
    async with engine.connect() as connection:
        rows = (await connection.execute(select(deliveries.c.due_at, deliveries.c.sent_at))).all()
    late = sorted((row.sent_at - row.due_at).total_seconds() for row in rows if row.sent_at is not None)
    return late, max(row.sent_at for row in rows if row.sent_at is not None)


def percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, max(0, round(fraction * len(values)) - 1))]


async def burst(database_url: str, count: int, concurrency: int, batch_size: int, sink: SmtpSink,
                twilio_url: str) -> BurstResult:
    engine = create_engine(database_url)
    await create_tables(engine, NOTIFIER_SCHEMA)
    ledger = DeliveryLedger(engine)
    email = SmtpEmailSender("127.0.0.1", sink.port,
                            "Harbourfront Sports Medicine <no-reply@harbourfront-clinic.example>")
    sms = TwilioSmsSender(ACCOUNT_SID, AUTH_TOKEN, from_number=CLINIC_NUMBER, api_base_url=twilio_url)
    dispatcher = Dispatcher(
        service="bench", ledger=ledger,
        composer=MessageComposer(TemplateCatalogue(), CLINIC, PatientLinks("http://127.0.0.1:8040", "bench")),
        email=email, sms=sms, suppressions=SuppressionList(engine), clock=SystemClock(),
        batch_size=batch_size, concurrency=concurrency,
    )
    due_at = datetime.now(UTC) + LEAD
    async with engine.begin() as connection:
        await ledger.record(connection, intents(count, due_at), datetime.now(UTC))
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        counts = await wait_until_all_final(ledger, count)
    finally:
        stop.set()
        dispatcher.wake()
        await running
        await email.close()
        await sms.close()
    late, last_sent = await lateness_seconds(engine)
    await engine.dispose()
    return BurstResult(counts=counts, late=late, wall=(last_sent - due_at).total_seconds())


def exactly_once(sink: SmtpSink, sms_bodies: list[dict[str, object]], count: int) -> list[str]:
    problems = []
    mails = Counter(address for mail in sink.messages for address in mail.recipients)
    texts = Counter(str(message["to"]) for message in sms_bodies)
    for n in range(count):
        channel = ("email", "sms")[n % 2]
        received = (mails if channel == "email" else texts)[recipient(channel, n)]
        if received != 1:
            problems.append(f"{recipient(channel, n)} received {received}")
    return problems


def report(result: BurstResult, count: int, problems: list[str], database: str) -> None:
    late, wall = result.late, result.wall
    print(f"database        {database}")
    print(f"messages        {count} ({count - count // 2} email, {count // 2} SMS), all due at once")
    print(f"outcome         {result.counts}")
    print(f"wall time       {wall:.2f} s (due instant -> last sent_at)")
    print(f"throughput      {len(late) / wall:.0f} msg/s" if wall > 0 else "throughput      n/a")
    print(f"lateness        p50 {percentile(late, 0.50):.2f} s, p95 {percentile(late, 0.95):.2f} s, "
          f"p99 {percentile(late, 0.99):.2f} s, max {late[-1]:.2f} s, mean {statistics.fmean(late):.2f} s")
    print(f"exactly once    {'yes' if not problems else 'NO: ' + '; '.join(problems[:10])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--database", default="sqlite", help="'sqlite' (fresh file) or a postgresql+asyncpg:// URL")
    parser.add_argument("--concurrency", type=int, default=8, help="dispatcher's concurrent sends (service default 8)")
    parser.add_argument("--batch-size", type=int, default=100, help="messages claimed per round (default 100)")
    args = parser.parse_args()
    configure_logging("WARNING", json=True)
    logging.getLogger("aiosmtpd").setLevel(logging.WARNING)

    async def run(sink: SmtpSink, twilio_url: str) -> BurstResult:
        async with fresh_database(args.database) as url:
            return await burst(url, args.messages, args.concurrency, args.batch_size, sink, twilio_url)

    twilio = start_twilio_sandbox()
    try:
        with SmtpSink() as sink:
            result = uvloop.run(run(sink, twilio.url))
            problems = exactly_once(sink, twilio.messages(), args.messages)
    finally:
        twilio.server.stop()
    report(result, args.messages, problems, "SQLite" if args.database == "sqlite" else "PostgreSQL")
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
