"""Two notifier instances dispatching from one PostgreSQL ledger to a slow mail server: every email
arrives once."""
from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sandbox.smtp_sink import SmtpSink
from services.notifier.tables import SCHEMA as NOTIFIER_SCHEMA
from shared.channels.sms import TwilioSmsSender
from shared.clinic_config import load_clinic_config
from shared.clock import SystemClock
from shared.database import create_engine, create_tables
from shared.delivery.compose import MessageComposer
from shared.delivery.dispatcher import Dispatcher
from shared.delivery.wiring import build_channels, checked_catalogue, patient_links
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.model import DeliveryIntent
from shared.ledger.suppressions import SuppressionList
from shared.settings import DeliverySettings, SmtpSettings, TwilioSettings
from tests.conftest import create_postgres_database
from tests.support.postgres_server import PostgresServer

CLINIC = load_clinic_config(Path(__file__).resolve().parents[2] / "deploy" / "clinic.yaml")
EMAILS = 16


@pytest.fixture
def slow_sink() -> Iterator[SmtpSink]:
    with SmtpSink(delay=1.0) as running:  # a mail server taking 1 s over each message
        yield running


async def test_two_dispatchers_with_short_leases_send_each_email_once(
    postgres: PostgresServer, slow_sink: SmtpSink
) -> None:
    engine = create_engine(await create_postgres_database(postgres))
    await create_tables(engine, NOTIFIER_SCHEMA)
    settings = DeliverySettings(
        link_secret="a-test-secret-of-at-least-32-bytes",
        smtp=SmtpSettings(port=slow_sink.port, pool_size=2, sender="Clinic <desk@clinic.example>"),
        twilio=TwilioSettings(api_base_url="http://127.0.0.1:9"),
    )
    now = datetime.now(UTC)
    ledger = DeliveryLedger(engine)
    context = {"appointment": {"location_id": "downtown"}, "patient": {"first_name": "Alex"}}
    intents = [
        DeliveryIntent(f"apt-{i}", "opt_out_confirmation", "email", 1, "opt_out_confirmation",
                       f"p{i}@example.com", "en-CA", now, context)
        for i in range(EMAILS)
    ]
    async with engine.begin() as connection:
        await ledger.record(connection, intents, now)

    channels: list[TwilioSmsSender] = []
    dispatchers = []
    for _ in range(2):
        email, sms = build_channels(settings)
        channels.append(sms)
        dispatchers.append(Dispatcher(
            service="notifier", ledger=DeliveryLedger(engine),
            composer=MessageComposer(checked_catalogue(CLINIC), CLINIC, patient_links(settings)),
            email=email, sms=sms, suppressions=SuppressionList(engine), clock=SystemClock(),
            concurrency=2, lease=timedelta(seconds=3), idle_poll=timedelta(milliseconds=200),
        ))
    stop = asyncio.Event()
    running = [asyncio.create_task(dispatcher.run(stop)) for dispatcher in dispatchers]
    try:
        deadline = asyncio.get_running_loop().time() + 40
        while (await ledger.counts_by_status()).get("sent", 0) < EMAILS:
            assert asyncio.get_running_loop().time() < deadline, await ledger.counts_by_status()
            await asyncio.sleep(0.2)
        await asyncio.sleep(4)  # past the leases: anything reclaimed would be sent again by now
    finally:
        stop.set()
        await asyncio.gather(*running)
        for sms in channels:
            await sms.close()
        for dispatcher in dispatchers:
            await dispatcher.email.close()  # type: ignore[attr-defined]  # the SMTP sender built above
        await engine.dispose()
    arrivals = collections.Counter(mail.recipients[0] for mail in slow_sink.messages)
    assert {address: count for address, count in arrivals.items() if count > 1} == {}
    assert len(arrivals) == EMAILS
