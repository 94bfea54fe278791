"""The booking service's workers: the relay runs until the service stops, a dead worker turns health red."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.booking_events import bootstrap
from services.booking_events.bootstrap import BookingParts
from services.booking_events.settings import BookingSettings
from services.booking_events.tables import SCHEMA as BOOKING_SCHEMA
from services.booking_events.workers import idempotency_purge_worker, outbox_relay_worker
from shared.clock import FixedClock
from shared.database import create_tables
from shared.outbox.kafka_publisher import RecordingPublisher
from shared.process import Health, Worker, WorkerDied, supervise

API_KEY = "test-key-1"
NOW = datetime(2025, 3, 3, 14, 0, tzinfo=UTC)
BOOKING = {
    "appointment_id": "apt_w",
    "patient": {"patient_id": "pat_1", "name": "Maya Singh", "phone": "+14165550123",
                "consent": {"email": False, "sms": True}},
    "appointment": {"type": "dry_needling", "starts_at": "2025-03-10T10:00:00-04:00",
                    "duration_minutes": 45, "practitioner": "Dr. Chen", "location_id": "downtown"},
}


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
async def parts(tmp_path: Path, publisher: RecordingPublisher) -> AsyncIterator[BookingParts]:
    settings = BookingSettings(
        api_keys=[API_KEY],
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'booking.db'}",
        outbox_poll_interval_s=0.05,
    )
    parts = bootstrap.build(settings, clock=FixedClock(NOW), publisher=publisher)
    await create_tables(parts.engine, BOOKING_SCHEMA)
    yield parts
    await parts.engine.dispose()


@pytest.fixture
async def client(parts: BookingParts) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=parts.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://booking", headers={"X-API-Key": API_KEY}
    ) as client:
        yield client


async def test_a_booking_is_published_by_the_relay_worker_which_ends_when_the_service_stops(
    parts: BookingParts, publisher: RecordingPublisher, client: httpx.AsyncClient
) -> None:
    stop = asyncio.Event()
    relaying = asyncio.ensure_future(outbox_relay_worker(parts.relay).run(stop))
    assert (await client.post("/v1/appointments", json=BOOKING)).status_code == 201

    async with asyncio.timeout(5):
        while not publisher.published:
            await asyncio.sleep(0.01)
        stop.set()
        await relaying

    assert [message.key for message in publisher.published] == ["apt_w"]


async def test_the_relay_and_the_key_purge_stop_cleanly_with_the_service(parts: BookingParts) -> None:
    stop = asyncio.Event()
    workers = [
        outbox_relay_worker(parts.relay),
        idempotency_purge_worker(parts.store, parts.clock, timedelta(hours=24)),
    ]
    supervising = asyncio.create_task(supervise(workers, stop, parts.health))
    await asyncio.sleep(0.2)
    stop.set()

    async with asyncio.timeout(5):
        await supervising
    assert parts.health.ok


async def test_a_dead_worker_turns_health_red_naming_it(
    parts: BookingParts, client: httpx.AsyncClient
) -> None:
    async def dies(stop: asyncio.Event) -> None:
        raise ConnectionError("gone")

    stop = asyncio.Event()
    with pytest.raises(WorkerDied):
        async with asyncio.timeout(5):
            await supervise([outbox_relay_worker(parts.relay), Worker("http", dies)], stop, parts.health)

    response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "dead_workers": ["http"]}


def test_the_service_builds_without_starting_anything(parts: BookingParts) -> None:
    assert isinstance(parts.health, Health) and parts.health.ok
    assert not parts.relay.wakeup.is_set()
