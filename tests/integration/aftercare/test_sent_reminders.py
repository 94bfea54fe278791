"""Aftercare reads the notifier's delivery reports off the real broker: a reminder text reported sent on
clinic.deliveries.v1 is what the patient's "C" answers; a record that is no delivery report is dead-lettered
to clinic.deliveries.v1.dlq, byte for byte, and the reports after it are still applied."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from services.aftercare import bootstrap
from services.aftercare.tables import sent_reminders
from shared.clock import FixedClock
from shared.events.deliveries import DeliveryStatusChanged
from shared.outbox.kafka_publisher import RecordingPublisher
from shared.settings import CommonSettings, KafkaSettings
from shared.topics import DELIVERIES, DELIVERIES_DEAD_LETTER
from tests.integration.aftercare.conftest import PATIENT_PHONE, TORONTO, settings_for
from tests.integration.consumer_support import dead_letters, produce
from tests.support.events import booked
from tests.support.kafka_server import KafkaServer, free_port

pytestmark = pytest.mark.kafka


@asynccontextmanager
async def running_aftercare(kafka: KafkaServer, tmp_path: Path,
                            now: datetime) -> AsyncIterator[bootstrap.AftercareParts]:
    """The service as `bootstrap.run` runs it, on the real broker, its clock stopped at `now`."""
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/aftercare.db", http_port=free_port(),
                            group_id=f"aftercare-{uuid.uuid4().hex[:8]}", metrics_port=None)
    settings = settings.model_copy(update={"common": CommonSettings(
        clinic_config_file=settings.common.clinic_config_file,
        kafka=KafkaSettings(bootstrap_servers=kafka.bootstrap_servers))})
    parts = bootstrap.build(settings, clock=FixedClock(now), publisher=RecordingPublisher())
    stop = asyncio.Event()
    running = asyncio.create_task(bootstrap.run(parts, stop))
    try:
        async with asyncio.timeout(60):
            while not parts.broker.running:
                assert not running.done(), running.exception()
                await asyncio.sleep(0.05)
        yield parts
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(running, return_exceptions=True), timeout=60)


async def until_recorded(parts: bootstrap.AftercareParts, delivery_id: str) -> None:
    async with asyncio.timeout(30):
        while True:
            async with parts.engine.connect() as connection:
                if (await connection.execute(select(sent_reminders.c.delivery_id)
                                             .where(sent_reminders.c.delivery_id == delivery_id))).first():
                    return
            await asyncio.sleep(0.1)


async def test_a_reminder_reported_on_the_deliveries_topic_is_what_the_patient_s_c_confirms(
        kafka: KafkaServer, tmp_path: Path) -> None:
    visit_at = datetime(2026, 6, 11, 10, 0, tzinfo=TORONTO)
    appointment_id = f"apt-k-{uuid.uuid4().hex[:8]}"
    reminded_at = visit_at - timedelta(hours=24)
    async with running_aftercare(kafka, tmp_path, visit_at - timedelta(hours=20)) as aftercare:
        await aftercare.completed_visits.handle_batch(
            [booked(appointment_id, visit_at, occurred_at=visit_at - timedelta(days=7))])
        report = DeliveryStatusChanged(
            occurred_at=reminded_at, appointment_id=appointment_id, delivery_id=str(uuid.uuid4()),
            service="notifier", step="reminder_24h", channel="sms", template="reminder", source="dispatcher",
            status="sent")
        key = appointment_id.encode()
        await produce(kafka.bootstrap_servers, [(key, b"not a delivery report", []),
                                                (key, report.model_dump_json().encode(), [])], topic=DELIVERIES)
        await until_recorded(aftercare, report.delivery_id)

        outcome = await aftercare.answers.sms_reply("SM-k1", PATIENT_PHONE, "C")

        assert outcome.response_text is not None and "confirmed" in outcome.response_text
        [letter] = await dead_letters(kafka.bootstrap_servers, DELIVERIES_DEAD_LETTER,
                                      bootstrap.deliveries_group(aftercare.settings.group_id), 1)
        assert (letter.key, letter.value) == (key, b"not a delivery report")
        assert dict(letter.headers)["dlq-source-topic"] == DELIVERIES.encode()
