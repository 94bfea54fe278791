"""Events applied a batch at a time: the same outcome as one by one, and one bad event in a batch is
dead-lettered while the others are applied (real broker)."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from sqlalchemy import select

from services.notifier import bootstrap
from services.notifier.settings import NotifierSettings
from services.notifier.tables import SCHEMA, appointments
from shared.clock import FixedClock
from shared.consumer import EventConsumer, KafkaDeadLetters
from shared.database import create_tables
from shared.events.appointment import AppointmentEvent
from shared.ledger.tables import deliveries
from shared.settings import DeliverySettings, KafkaSettings, TwilioSettings
from tests.integration.consumer_support import NothingIsSent, dead_letters, produce, until_lag_is_zero
from tests.support.events import booked, cancelled, in_hours, rescheduled
from tests.support.kafka_server import KafkaServer, free_port

NOW = datetime(2025, 3, 3, 14, 0, tzinfo=UTC)


def a_busy_day() -> list[AppointmentEvent]:
    """Three appointments: one booked and moved twice, one booked then cancelled, one replayed."""
    moved, dropped, replayed = (booked(f"apt-{n}", in_hours(72 + n, NOW)) for n in range(3))
    return [
        moved, dropped, replayed,
        rescheduled(moved, in_hours(96, NOW), sequence=2), cancelled(dropped, sequence=2), replayed,
        rescheduled(moved, in_hours(30, NOW), sequence=3),
    ]


@pytest.fixture
async def two_notifiers(tmp_path: Path) -> AsyncIterator[tuple[bootstrap.NotifierParts, bootstrap.NotifierParts]]:
    built = []
    for name in ("batch", "single"):
        settings = NotifierSettings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/{name}.db", metrics_port=None, http_port=free_port(),
            delivery=DeliverySettings(link_secret="a-test-secret-of-at-least-32-bytes",
                                      twilio=TwilioSettings(api_base_url="http://127.0.0.1:9")),
        )
        parts = bootstrap.build(settings, clock=FixedClock(NOW), email=NothingIsSent(), sms=NothingIsSent())
        await create_tables(parts.engine, SCHEMA)
        built.append(parts)
    yield built[0], built[1]
    for parts in built:
        await bootstrap.close(parts)


async def recorded(parts: bootstrap.NotifierParts) -> tuple[list[Any], list[Any]]:
    async with parts.engine.connect() as connection:
        states = (await connection.execute(select(
            appointments.c.appointment_id, appointments.c.last_sequence, appointments.c.status
        ).order_by(appointments.c.appointment_id))).all()
        messages = (await connection.execute(select(
            deliveries.c.appointment_id, deliveries.c.step, deliveries.c.channel, deliveries.c.appointment_version,
            deliveries.c.status, deliveries.c.due_at,
        ).order_by(deliveries.c.appointment_id, deliveries.c.step, deliveries.c.channel,
                   deliveries.c.appointment_version))).all()
    return [tuple(s) for s in states], [tuple(m) for m in messages]


async def test_a_day_of_events_applied_as_one_batch_leaves_what_one_by_one_leaves(
    two_notifiers: tuple[bootstrap.NotifierParts, bootstrap.NotifierParts]
) -> None:
    batch, single = two_notifiers
    decisions = await batch.handler.handle_batch(a_busy_day())
    for event in a_busy_day():
        await single.handler(event)
    assert [d.ignored_because for d in decisions] == [None] * 5 + ["not_newer_than_applied_sequence", None]
    assert await recorded(batch) == await recorded(single)
    states, messages = await recorded(batch)
    assert states == [("apt-0", 3, "booked"), ("apt-1", 2, "cancelled"), ("apt-2", 1, "booked")]
    assert messages, "the consenting patients' messages are in the ledger"


@pytest.mark.kafka
async def test_one_bad_event_in_a_batch_is_dead_lettered_and_the_rest_are_applied_in_order(
    kafka: KafkaServer, unique_id: str
) -> None:
    source, dead = f"test.batch.{unique_id}", f"test.batch.{unique_id}.dlq"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(source, 1, 1), NewTopic(dead, 1, 1)])
    finally:
        await admin.close()
    events = [booked(f"apt-{n}", in_hours(48)) for n in range(20)]
    sent = await produce(kafka.bootstrap_servers,
                         [(e.appointment_id.encode(), e.model_dump_json().encode(), []) for e in events],
                         topic=source)
    applied: list[str] = []
    batches: list[int] = []

    async def handle_batch(batch: list[AppointmentEvent]) -> None:
        batches.append(len(batch))
        if any(event.appointment_id == "apt-7" for event in batch):
            raise KeyError("a defect in applying apt-7")
        applied.extend(event.appointment_id for event in batch)

    group = f"batch-{unique_id}"
    broker = KafkaBroker(kafka.bootstrap_servers, logger=None)
    EventConsumer(
        service="test", group_id=group, handle_batch=handle_batch, dead_letter_topic=dead, retry_pause_seconds=0.05,
        dead_letters=KafkaDeadLetters(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers)),
    ).subscribe(broker, source)
    await broker.start()
    try:
        [letter] = await dead_letters(kafka.bootstrap_servers, dead, group, 1)
        await until_lag_is_zero(kafka.bootstrap_servers, group, source)
        await asyncio.sleep(0.5)
    finally:
        await broker.stop()
    assert applied == [e.appointment_id for e in events if e.appointment_id != "apt-7"]
    assert batches[0] == len(events), "the events came as one batch first"
    headers = dict(letter.headers)
    assert headers["dlq-reason"] == b"processing_failed"
    assert headers["dlq-detail"] == b"KeyError after 3 attempts"
    assert int(headers["dlq-source-offset"]) == sent[7].offset and letter.value == sent[7].value
