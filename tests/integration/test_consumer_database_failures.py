"""The notifier against a real PostgreSQL: an event the database refuses is dead-lettered and the next
one applied; a database that goes away mid-stream is waited out and nothing is lost."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from services.notifier.tables import SCHEMA, appointments
from shared.database import create_engine, create_tables
from shared.events.patient import ChannelConsent
from shared.topics import APPOINTMENTS_DEAD_LETTER
from tests.conftest import create_postgres_database
from tests.integration.consumer_support import (
    begin_at_end,
    dead_letters,
    notifier_settings,
    produce,
    running_notifier,
    until_lag_is_zero,
)
from tests.support.events import booked, patient, rescheduled
from tests.support.kafka_server import KafkaServer, free_port
from tests.support.postgres_server import PostgresServer, start_postgres

pytestmark = pytest.mark.kafka

STARTS = datetime.now(UTC) + timedelta(days=3)
SILENT = patient(consent=ChannelConsent(email=False, sms=False))  # nothing is sent


def booking(appointment_id: str) -> tuple[bytes, bytes, list[tuple[str, bytes | None]]]:
    event = booked(appointment_id, STARTS, who=SILENT)
    return appointment_id.encode(), event.model_dump_json().encode(), []


async def test_an_event_the_database_refuses_is_dead_lettered_and_the_next_one_applied(
    kafka: KafkaServer, postgres: PostgresServer, unique_id: str
) -> None:
    group = f"notifier-{unique_id}"
    refused, after = f"apt-{unique_id}-refused", f"apt-{unique_id}-next"
    database_url = await create_postgres_database(postgres)
    engine = create_engine(database_url)
    await create_tables(engine, SCHEMA)
    async with engine.begin() as connection:  # a rule of the database the event breaks: an integrity error
        await connection.execute(text(f"ALTER TABLE appointments ADD CONSTRAINT not_this_one "
                                      f"CHECK (appointment_id <> '{refused}')"))
    await engine.dispose()
    await begin_at_end(kafka.bootstrap_servers, group)
    sent = await produce(kafka.bootstrap_servers, [booking(refused), booking(after)], partition=1)
    settings = notifier_settings(kafka.bootstrap_servers, database_url, group)
    async with running_notifier(settings) as notifier:
        [letter] = await dead_letters(kafka.bootstrap_servers, APPOINTMENTS_DEAD_LETTER, group, 1)
        await until_lag_is_zero(kafka.bootstrap_servers, group)
        async with notifier.engine.connect() as connection:
            known = (await connection.execute(select(appointments.c.appointment_id).where(
                appointments.c.appointment_id.in_([refused, after])))).scalars().all()
    assert known == [after]
    headers = dict(letter.headers)
    assert headers["dlq-reason"] == b"processing_failed"
    assert (int(headers["dlq-source-partition"]), int(headers["dlq-source-offset"])) == (1, sent[0].offset)
    assert letter.value == sent[0].value


@pytest.fixture
def restartable_postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    """A server of this test's own, on a port that stays the same across a restart."""
    port = free_port()
    server = start_postgres(tmp_path / "pg", port=port)
    try:
        yield server
    finally:
        server.stop()


async def test_postgres_stopped_and_started_mid_stream_loses_nothing(
    kafka: KafkaServer, restartable_postgres: PostgresServer, tmp_path: Path, unique_id: str
) -> None:
    group = f"notifier-{unique_id}"
    ids = [f"apt-{unique_id}-{n}" for n in range(200)]
    first = [booked(i, STARTS, who=SILENT) for i in ids]
    second = [rescheduled(b, STARTS + timedelta(hours=2), sequence=2) for b in first]
    await begin_at_end(kafka.bootstrap_servers, group)
    settings = notifier_settings(kafka.bootstrap_servers, await create_postgres_database(restartable_postgres), group)
    port = int(restartable_postgres.dsn.rsplit(":", 1)[1].split("/")[0])
    async with running_notifier(settings) as notifier:
        await produce(kafka.bootstrap_servers, [(e.appointment_id.encode(), e.model_dump_json().encode(), [])
                                                for e in first])
        async with asyncio.timeout(60):
            while True:
                async with notifier.engine.connect() as connection:
                    ours = appointments.c.appointment_id.like(f"apt-{unique_id}-%")  # the topic holds others' too
                    applied = (await connection.execute(select(appointments.c.appointment_id).where(ours))).all()
                    if len(applied) == len(ids):
                        break
                await asyncio.sleep(0.2)
        await asyncio.to_thread(restartable_postgres.stop)
        await produce(kafka.bootstrap_servers, [(e.appointment_id.encode(), e.model_dump_json().encode(), [])
                                                for e in second])
        await asyncio.sleep(5)  # the consumer meets the closed database and waits
        await asyncio.to_thread(start_postgres, restartable_postgres.data_dir, port)
        await until_lag_is_zero(kafka.bootstrap_servers, group, timeout_s=120)
        async with notifier.engine.connect() as connection:
            sequences = dict((await connection.execute(
                select(appointments.c.appointment_id, appointments.c.last_sequence)
                .where(appointments.c.appointment_id.like(f"apt-{unique_id}-%")))).all())
    assert sequences == dict.fromkeys(ids, 2)
    with pytest.raises(TimeoutError):
        await dead_letters(kafka.bootstrap_servers, APPOINTMENTS_DEAD_LETTER, group, 1, timeout_s=3)
