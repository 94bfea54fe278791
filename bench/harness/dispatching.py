"""One real Dispatcher in this process, on a ledger of its own, sending to the sink and sandbox processes."""
from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.harness.stack import LINK_SECRET, SENDER
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
from shared.links import PatientLinks
from shared.templates.catalogue import TemplateCatalogue
from shared.templates.sample import sample_context
from tests.support.channels import ACCOUNT_SID, AUTH_TOKEN, CLINIC_NUMBER

CLINIC = load_clinic_config(Path(__file__).resolve().parents[2] / "deploy" / "clinic.yaml")


def composer() -> MessageComposer:
    return MessageComposer(TemplateCatalogue(), CLINIC, PatientLinks("http://127.0.0.1:8040", LINK_SECRET))


def recipient(channel: str, run: str, n: int) -> str:
    return f"{run}-{n}@example.com" if channel == "email" else f"+1416{2_000_000 + n:07d}"


def reminder_intents(channel: str, run: str, count: int, due_at: datetime) -> list[DeliveryIntent]:
    context = sample_context("physiotherapy", "en-CA", "reminder")
    return [DeliveryIntent(f"apt-{run}-{n:07d}", "reminder_24h", channel, 1, "reminder",
                           recipient(channel, run, n), "en-CA", due_at, context) for n in range(count)]


async def dispatch_all(
    database_url: str, intents: list[DeliveryIntent], *, smtp_port: int, twilio_url: str,
    pool_size: int = 4, sms_concurrency: int = 8, sms_per_second: float = 10.0, timeout: float = 600.0,
) -> float:
    """Records `intents` due now and runs the dispatcher until every one is final. Returns the wall
    clock (epoch seconds) at the dispatcher's start: throughput is read from what the receiver stamped."""
    engine = create_engine(database_url)
    await create_tables(engine, NOTIFIER_SCHEMA)
    ledger = DeliveryLedger(engine)
    async with engine.begin() as connection:
        await ledger.record(connection, intents, datetime.now(UTC))
    email = SmtpEmailSender("127.0.0.1", smtp_port, SENDER, pool_size=pool_size)
    sms = TwilioSmsSender(ACCOUNT_SID, AUTH_TOKEN, from_number=CLINIC_NUMBER, api_base_url=twilio_url,
                          messages_per_second=sms_per_second)
    dispatcher = Dispatcher(
        service="bench", ledger=ledger,
        composer=composer(),
        email=email, sms=sms, suppressions=SuppressionList(engine), clock=SystemClock(),
        channel_limits={"email": pool_size, "sms": sms_concurrency},
    )
    stop = asyncio.Event()
    started = time.monotonic()
    started_wall = time.time()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        deadline = started + timeout
        while time.monotonic() < deadline:
            counts = await ledger.counts_by_status()
            if counts.get("pending", 0) + counts.get("sending", 0) == 0:
                break
            await asyncio.sleep(0.25)  # throughput is read from the receiver's stamps, not from this
    finally:
        stop.set()
        dispatcher.wake()
        await running
        await email.close()
        await sms.close()
        await engine.dispose()
    return started_wall
