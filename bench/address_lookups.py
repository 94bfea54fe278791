"""One address's messages in a grown ledger: an opt-out's cancellation of what is pending to a number, and
the look for the provider ids already sent to a number (made before a text whose outcome is unknown is
sent again), timed on the notifier's SQLite ledger (its migrations applied) holding --messages messages,
half texts and half emails, every one pending, each to a patient of its own.

The opt-out runs in a transaction of its own, as aftercare applies a STOP: on SQLite it holds the
database's write lock for as long as it takes, and every other writer (the consumer, the dispatcher)
waits. Measures and prints; asserts nothing.

    .venv/bin/python -m bench.address_lookups [--messages 500000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness.machine import describe
from services.notifier.migrations import MIGRATIONS
from shared.database import create_engine
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.model import DeliveryIntent
from shared.ledger.recording import rows_of
from shared.ledger.tables import deliveries
from shared.schema_migrations import upgrade_to_head

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
CHUNK = 20_000


def _phone(n: int) -> str:
    return f"+1416{n:07d}"


def _intent(n: int, channel: str) -> DeliveryIntent:
    return DeliveryIntent(
        appointment_id=f"apt-{n}", step="reminder", channel=channel, appointment_version=1, template="reminder",
        recipient=_phone(n) if channel == "sms" else f"patient-{n}@example.com", locale="en-CA",
        due_at=NOW + timedelta(days=1), context={"patient": {"first_name": "Alex"}},
    )


async def measure(messages: int, repeat: int) -> dict[str, list[float]]:
    engine = create_engine(f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='bench-address-')) / 'notifier.db'}")
    try:
        await upgrade_to_head(engine, MIGRATIONS)
        patients = messages // 2
        for first in range(0, patients, CHUNK):
            intents = [_intent(n, channel) for n in range(first, min(patients, first + CHUNK))
                       for channel in ("sms", "email")]
            async with engine.begin() as connection:
                await connection.execute(deliveries.insert(), rows_of(intents, NOW))
        ledger = DeliveryLedger(engine)
        timings: dict[str, list[float]] = {"opt-out": [], "provider ids to one number": []}
        for k in range(repeat):
            started = time.perf_counter()
            async with engine.begin() as connection:
                await ledger.cancel_pending_to(connection, "sms", _phone(k), "opted_out", NOW)
            timings["opt-out"].append(time.perf_counter() - started)
            started = time.perf_counter()
            await ledger.provider_ids_to("sms", _phone(repeat + k))
            timings["provider ids to one number"].append(time.perf_counter() - started)
        return timings
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.messages < 2 or args.repeat < 1:
        parser.error("--messages must be at least 2 and --repeat at least 1")
    print(describe())
    timings = asyncio.run(measure(args.messages, args.repeat))
    print(f"\nSQLite ledger of {args.messages:,} messages, all pending, half of them texts; {args.repeat} of each:\n")
    print("| lookup | fastest (ms) | slowest (ms) |\n|---|---|---|")
    for name, seconds in timings.items():
        print(f"| {name} | {1000 * min(seconds):.1f} | {1000 * max(seconds):.1f} |")


if __name__ == "__main__":
    main()
