"""The outbox relay against a real broker: events stored while Kafka is away arrive later, in order."""
from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking_events import bootstrap
from services.booking_events.domain.commands import (
    BookAppointment,
    CancelAppointment,
    RescheduleAppointment,
)
from services.booking_events.handlers import handle_command
from services.booking_events.migrations import MIGRATIONS as BOOKING_MIGRATIONS
from services.booking_events.settings import BookingSettings
from services.booking_events.store import BOOKING_OUTBOX, BookingStore
from services.booking_events.tables import SCHEMA as BOOKING_SCHEMA
from shared.database import create_engine, create_tables
from shared.events import PatientContact, parse_appointment_event
from shared.events.appointment import AppointmentDetails
from shared.outbox.kafka_publisher import KafkaEventPublisher
from shared.outbox.relay import OutboxRelay
from shared.schema_migrations import upgrade_to_head
from shared.settings import CommonSettings, KafkaSettings
from shared.topics import APPOINTMENTS
from tests.conftest import create_postgres_database
from tests.support.kafka_server import KafkaServer, free_port
from tests.support.postgres_server import PostgresServer, start_postgres

pytestmark = pytest.mark.kafka

NOW = datetime(2025, 3, 3, 14, 0, tzinfo=UTC)
APPOINTMENTS_IN_TEST = 12


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'booking.db'}")
    await create_tables(engine, BOOKING_SCHEMA)
    yield engine
    await engine.dispose()


async def record_a_busy_morning(engine: AsyncEngine, run_id: str) -> list[str]:
    """Each appointment is booked, rescheduled twice, and every third one cancelled."""
    store = BookingStore(engine)
    ids = [f"apt_{run_id}_{n}" for n in range(APPOINTMENTS_IN_TEST)]
    patient = PatientContact(patient_id="pat_1", name="Maya Singh", phone="+14165550123")
    for n, appointment_id in enumerate(ids):
        details = AppointmentDetails(
            type="physiotherapy",
            starts_at=NOW + timedelta(days=1, hours=n),
            duration_minutes=30,
            practitioner="Dr. Chen",
            location_id="yonge-eglinton",
        )
        await handle_command(store, BookAppointment(appointment_id, patient, details), NOW, 201)
    for move in (1, 2):
        for n, appointment_id in enumerate(ids):
            starts_at = NOW + timedelta(days=1 + move, hours=n)
            await handle_command(store, RescheduleAppointment(appointment_id, starts_at), NOW, 200)
    for appointment_id in ids[::3]:
        await handle_command(store, CancelAppointment(appointment_id), NOW, 200)
    return ids


async def run_relay_until_empty(relay: OutboxRelay, engine: AsyncEngine, timeout_s: float) -> None:
    task = asyncio.create_task(relay.run())
    try:
        async with asyncio.timeout(timeout_s):
            while (await BOOKING_OUTBOX.backlog(engine)).unpublished:
                await asyncio.sleep(0.1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


Received = list[tuple[bytes, bytes, dict[str, bytes]]]


async def consume(bootstrap_servers: str, expected: int, prefix: str) -> Received:
    consumer = AIOKafkaConsumer(
        APPOINTMENTS,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    received: Received = []
    try:
        async with asyncio.timeout(60):
            while len(received) < expected:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    for record in records:
                        if record.key is not None and record.key.decode(errors="replace").startswith(prefix):
                            received.append((record.key, record.value, dict(record.headers)))
    finally:
        await consumer.stop()
    return received


async def test_events_stored_while_kafka_is_away_are_published_in_order_once_it_is_back(
    kafka: KafkaServer, engine: AsyncEngine
) -> None:
    run_id = datetime.now(UTC).strftime("%H%M%S%f")
    ids = await record_a_busy_morning(engine, run_id)
    stored = (await BOOKING_OUTBOX.backlog(engine)).unpublished
    assert stored == APPOINTMENTS_IN_TEST * 3 + len(ids[::3])

    unreachable = OutboxRelay(
        engine,
        BOOKING_OUTBOX,
        KafkaEventPublisher(f"127.0.0.1:{free_port()}", request_timeout_ms=2000),
        poll_interval_s=0.1,
        first_backoff_s=0.1,
        max_backoff_s=0.2,
    )
    relay_task = asyncio.create_task(unreachable.run())
    await asyncio.sleep(2)
    relay_task.cancel()
    await asyncio.gather(relay_task, return_exceptions=True)
    assert (await BOOKING_OUTBOX.backlog(engine)).unpublished == stored

    kafka_settings = KafkaSettings(bootstrap_servers=kafka.bootstrap_servers)
    settings = BookingSettings(
        database_url=str(engine.url),
        outbox_poll_interval_s=0.1,
        common=CommonSettings(kafka=kafka_settings),
    )
    parts = bootstrap.build(settings)  # the real Kafka publisher
    try:
        await run_relay_until_empty(parts.relay, engine, timeout_s=60)
    finally:
        await parts.engine.dispose()

    received = await consume(kafka.bootstrap_servers, stored, prefix=f"apt_{run_id}_")
    sequences: dict[str, list[int]] = defaultdict(list)
    for key, value, headers in received:
        event = parse_appointment_event(value)
        assert key.decode() == event.appointment_id
        assert headers["event_type"].decode() == event.event_type
        assert headers["event_id"].decode() == str(event.event_id)
        assert headers["schema_version"] == b"1"
        sequences[event.appointment_id].append(event.sequence)
    assert len(received) == stored
    for appointment_id in ids:
        cancelled = appointment_id in ids[::3]
        assert sequences[appointment_id] == ([1, 2, 3, 4] if cancelled else [1, 2, 3])


async def published_keys(bootstrap_servers: str, prefix: str, expected: int) -> list[str]:
    return [key.decode() for key, _, _ in await consume(bootstrap_servers, expected, prefix)]


async def test_a_relay_started_while_postgres_is_down_waits_for_it_then_publishes(
    kafka: KafkaServer, tmp_path: Path, unique_id: str
) -> None:
    port = free_port()
    server = start_postgres(tmp_path / "pg", port=port)
    try:
        engine = create_engine(await create_postgres_database(server))
        await create_tables(engine, BOOKING_SCHEMA)
        await record_a_busy_morning(engine, unique_id)
        stored = (await BOOKING_OUTBOX.backlog(engine)).unpublished
        await engine.dispose()
        await asyncio.to_thread(server.stop)

        relay = OutboxRelay(engine, BOOKING_OUTBOX, KafkaEventPublisher(kafka.bootstrap_servers), service="booking",
                            poll_interval_s=0.1, first_backoff_s=0.1, max_backoff_s=0.5)
        stop = asyncio.Event()
        relaying = asyncio.create_task(relay.run(stop))
        await asyncio.sleep(3)
        assert not relaying.done(), "the relay survives a database that is not there yet"
        await asyncio.to_thread(start_postgres, server.data_dir, port)
        async with asyncio.timeout(60):
            while (await BOOKING_OUTBOX.backlog(engine)).unpublished:
                await asyncio.sleep(0.2)
        assert len(await published_keys(kafka.bootstrap_servers, f"apt_{unique_id}_", stored)) == stored
        stop.set()
        await asyncio.wait_for(relaying, timeout=10)
        await engine.dispose()
    finally:
        server.stop()


async def test_an_event_kafka_can_never_take_is_moved_aside_and_the_events_behind_it_go_out(
    kafka: KafkaServer, engine: AsyncEngine, unique_id: str
) -> None:
    def row(key: str, value: str, headers: object) -> dict[str, object]:
        return {"topic": APPOINTMENTS, "key": key, "value": value, "headers": headers, "created_at": NOW}

    too_large, unserializable = f"apt_{unique_id}_large", f"apt_{unique_id}_headers"
    async with engine.begin() as connection:
        await connection.execute(BOOKING_OUTBOX.table.insert(), [
            row(too_large, "x" * 2_000_000, {}),
            row(too_large, '{"after": "the large one"}', {"event_type": "AppointmentRescheduled"}),
            row(unserializable, "{}", ["not", "a", "mapping"]),
            row(unserializable, '{"after": "the broken one"}', {}),
        ])
    dead_before = REGISTRY.get_sample_value("clinic_notify_outbox_dead_total", {"service": "booking"}) or 0

    relay = OutboxRelay(engine, BOOKING_OUTBOX, KafkaEventPublisher(kafka.bootstrap_servers), service="booking",
                        poll_interval_s=0.1, first_backoff_s=0.1, max_backoff_s=0.5)
    stop = asyncio.Event()
    relaying = asyncio.create_task(relay.run(stop))
    try:
        async with asyncio.timeout(30):
            while (await BOOKING_OUTBOX.backlog(engine)).unpublished:
                await asyncio.sleep(0.1)
        assert sorted(await published_keys(kafka.bootstrap_servers, f"apt_{unique_id}_", 2)) == [
            unserializable, too_large]
        async with asyncio.timeout(5):
            while REGISTRY.get_sample_value("clinic_notify_outbox_unpublished", {"service": "booking"}) != 0:
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(relaying, timeout=10)
    async with engine.connect() as connection:
        dead = (await connection.execute(select(BOOKING_OUTBOX.dead.c.key, BOOKING_OUTBOX.dead.c.reason)
                                         .order_by(BOOKING_OUTBOX.dead.c.id))).all()
    assert [key for key, _ in dead] == [too_large, unserializable]
    assert "too large" in dead[0][1] and "not serializable" in dead[1][1]
    assert REGISTRY.get_sample_value("clinic_notify_outbox_dead_total", {"service": "booking"}) == dead_before + 2
    assert REGISTRY.get_sample_value("clinic_notify_outbox_oldest_unpublished_age_seconds",
                                     {"service": "booking"}) == 0


@pytest.mark.postgres
@pytest.mark.parametrize("made_by", ["migrations", "create_all"])
async def test_events_another_instance_stored_go_out_at_once_not_at_the_next_poll(
    kafka: KafkaServer, postgres: PostgresServer, unique_id: str, made_by: str
) -> None:
    """Two instances on one PostgreSQL database: the one holding the advisory lock relays, and learns at
    once of the events the other stored (a notification when their transaction commits)."""
    url = await create_postgres_database(postgres)
    relaying_engine, other_engine = create_engine(url), create_engine(url)
    if made_by == "migrations":
        await upgrade_to_head(relaying_engine, BOOKING_MIGRATIONS)
    else:
        await create_tables(relaying_engine, BOOKING_SCHEMA)
    relay = OutboxRelay(relaying_engine, BOOKING_OUTBOX, KafkaEventPublisher(kafka.bootstrap_servers),
                        service="booking", poll_interval_s=60.0)
    stop = asyncio.Event()
    relaying = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(1.0)  # the relay has read the empty outbox and waits for its next poll
        ids = await record_a_busy_morning(other_engine, unique_id)  # the other instance: no wake here
        stored = APPOINTMENTS_IN_TEST * 3 + len(ids[::3])
        async with asyncio.timeout(10):  # far within the 60 s poll
            while (await BOOKING_OUTBOX.backlog(other_engine)).unpublished:
                await asyncio.sleep(0.1)
        assert len(await published_keys(kafka.bootstrap_servers, f"apt_{unique_id}_", stored)) == stored
    finally:
        stop.set()
        await asyncio.wait_for(relaying, timeout=15)
        await relaying_engine.dispose()
        await other_engine.dispose()
