"""The outbox relay's rounds: what it reads to publish what was committed, and when it stops reading."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pydantic import BaseModel
from sqlalchemy import MetaData, event
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.database import create_engine, create_tables
from shared.outbox.kafka_publisher import RecordingPublisher
from shared.outbox.relay import OutboxRelay
from shared.outbox.store import Outbox, OutgoingEvent, outbox_table

metadata = MetaData()
OUTBOX = Outbox(outbox_table("rounds_outbox", metadata))
NOW = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
SERVICE = "relay-rounds"


class Changed(BaseModel):
    appointment_id: str
    sequence: int


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    await create_tables(engine, metadata)
    yield engine
    await engine.dispose()


async def store(engine: AsyncEngine, *changes: tuple[str, int]) -> None:
    async with engine.begin() as connection:
        await OUTBOX.add_many(connection, [
            OutgoingEvent("clinic.test.v1", appointment_id, Changed(appointment_id=appointment_id, sequence=sequence))
            for appointment_id, sequence in changes], NOW)


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.fixture
def statements(engine: AsyncEngine) -> list[str]:
    seen: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda _c, _cursor, statement, *_: seen.append(" ".join(statement.split()[:2])))
    return seen


async def test_an_event_committed_while_the_relay_idles_costs_one_read_and_one_mark(
    engine: AsyncEngine, statements: list[str]
) -> None:
    """Woken by a commit, the relay reads what is pending, publishes it and marks it; having read all
    there was, it does not read again, nor count the backlog again, before the next wake."""
    publisher = RecordingPublisher()
    relay = OutboxRelay(engine, OUTBOX, publisher, service=SERVICE, poll_interval_s=60, backlog_interval_s=60)
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        await store(engine, ("apt_1", 1))
        relay.wake()
        await until(lambda: len(publisher.published) == 1)
        await asyncio.sleep(0.2)  # the relay is idle again
        statements.clear()

        await store(engine, ("apt_2", 1), ("apt_3", 1))
        relay.wake()
        await until(lambda: len(publisher.published) == 3)
        await asyncio.sleep(0.2)
    finally:
        stop.set()
        await running

    assert statements == ["INSERT INTO", "SELECT rounds_outbox.id,", "UPDATE rounds_outbox"]
    assert REGISTRY.get_sample_value("clinic_notify_outbox_unpublished", {"service": SERVICE}) == 0


async def test_later_events_of_one_appointment_go_out_in_order_without_waiting_for_the_poll(
    engine: AsyncEngine,
) -> None:
    """A round publishes one event per appointment; the events behind it go out in the rounds right after."""
    publisher = RecordingPublisher()
    relay = OutboxRelay(engine, OUTBOX, publisher, service=SERVICE, poll_interval_s=60, backlog_interval_s=60)
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        await store(engine, ("apt_1", 1), ("apt_1", 2), ("apt_2", 1), ("apt_1", 3))
        relay.wake()
        await until(lambda: len(publisher.published) == 4, timeout_s=5)
    finally:
        stop.set()
        await running

    sent = [Changed.model_validate_json(m.value) for m in publisher.published]
    assert [c.sequence for c in sent if c.appointment_id == "apt_1"] == [1, 2, 3]
    assert REGISTRY.get_sample_value("clinic_notify_outbox_unpublished", {"service": SERVICE}) == 0


async def test_a_full_batch_is_followed_by_another_round_at_once(engine: AsyncEngine) -> None:
    publisher = RecordingPublisher()
    relay = OutboxRelay(engine, OUTBOX, publisher, service=SERVICE, poll_interval_s=60, batch_size=5)
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        await store(engine, *((f"apt_{n}", 1) for n in range(12)))
        relay.wake()
        await until(lambda: len(publisher.published) == 12, timeout_s=5)
    finally:
        stop.set()
        await running
    assert [m.key for m in publisher.published] == [f"apt_{n}" for n in range(12)]
