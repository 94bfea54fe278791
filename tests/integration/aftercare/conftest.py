"""The aftercare service's real pieces on a fresh database, with a clock the test moves."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aftercare import bootstrap
from services.aftercare.handlers import CheckInAnswers, CompletedVisitHandler, ConsentBook, NoReplyWatch
from services.aftercare.settings import AftercareSettings
from services.aftercare.store import CheckInStore
from services.aftercare.tables import SCHEMA as AFTERCARE_SCHEMA
from services.aftercare.tables import check_ins, consent_audit, replies
from shared.clinic_config import ClinicConfig
from shared.clock import FixedClock
from shared.database import create_tables
from shared.delivery.compose import MessageComposer
from shared.events.appointment import AppointmentCompleted
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.tables import deliveries, sms_suppressions
from shared.links import PatientLinks
from shared.outbox.kafka_publisher import RecordingPublisher
from shared.outbox.store import Outbox
from shared.process import Health
from shared.settings import CommonSettings, DeliverySettings, TwilioSettings
from tests.support.events import booked, completed, patient

TORONTO = ZoneInfo("America/Toronto")
CLINIC_FILE = Path(__file__).resolve().parents[3] / "deploy" / "clinic.yaml"
VISIT_ENDS = datetime(2026, 6, 9, 16, 0, tzinfo=TORONTO)  # a Tuesday afternoon
ROUND_1 = VISIT_ENDS + timedelta(hours=24)
ROUND_2 = VISIT_ENDS + timedelta(hours=48)
PATIENT_PHONE = "+14165550123"
ON_CALL_EMAIL = "on-call@harbourfront-clinic.example"
ON_CALL_PHONE = "+14165550177"
TWILIO_AUTH_TOKEN = "twilio-auth-token-for-tests"


@dataclass
class Aftercare:
    """The clinic's aftercare desk as production wires it (`bootstrap.build`), with a clock the test moves."""

    parts: bootstrap.AftercareParts
    clock: FixedClock
    engine: AsyncEngine
    clinic: ClinicConfig
    ledger: DeliveryLedger
    store: CheckInStore
    outbox: Outbox
    consent: ConsentBook
    composer: MessageComposer
    links: PatientLinks
    completed_visits: CompletedVisitHandler
    answers: CheckInAnswers
    silence: NoReplyWatch
    health: Health

    async def visit_completed(self, appointment_id: str = "apt-dn-1", **who: Any) -> AppointmentCompleted:
        visit = booked(appointment_id, VISIT_ENDS - timedelta(minutes=30), occurred_at=VISIT_ENDS - timedelta(days=5),
                       who=patient(**who))
        event = completed(visit, sequence=2, completed_at=VISIT_ENDS)
        self.clock.set(VISIT_ENDS + timedelta(minutes=3))
        await self.completed_visits(event)
        return event

    async def time_passes_until(self, moment: datetime) -> None:
        """The clock moves on and the dispatcher sends whatever fell due (without the network)."""
        self.clock.set(moment)
        for delivery in await self.ledger.claim_due(moment, limit=100, lease=timedelta(seconds=60)):
            await self.ledger.mark_sent(delivery, f"SM{delivery.id.replace('-', '')}", moment)

    # --- what a clinician would look at ---

    async def rows(self, statement: Any) -> list[Any]:
        async with self.engine.connect() as connection:
            return list((await connection.execute(statement)).all())

    async def check_ins_of(self, appointment_id: str) -> list[Any]:
        return await self.rows(select(check_ins).where(check_ins.c.appointment_id == appointment_id)
                               .order_by(check_ins.c.round))

    async def messages(self, template: str, appointment_id: str | None = None) -> list[Any]:
        query = select(deliveries).where(deliveries.c.template == template)
        if appointment_id is not None:
            query = query.where(deliveries.c.appointment_id == appointment_id)
        return await self.rows(query.order_by(deliveries.c.due_at, deliveries.c.channel))

    async def replies(self) -> list[Any]:
        return await self.rows(select(replies).order_by(replies.c.received_at))

    async def published(self, event_type: str, topic: str | None = None) -> list[dict[str, Any]]:
        table = self.outbox.table
        rows = await self.rows(select(table).order_by(table.c.id))
        return [json.loads(row.value) | {"_topic": row.topic, "_key": row.key} for row in rows
                if row.headers.get("event_type") == event_type and (topic is None or row.topic == topic)]

    async def sms_suppressed(self) -> list[Any]:
        return await self.rows(select(sms_suppressions))

    async def consent_trail(self) -> list[Any]:
        return await self.rows(select(consent_audit).order_by(consent_audit.c.id))


def settings_for(database_url: str, **overrides: Any) -> AftercareSettings:
    return AftercareSettings(
        database_url=database_url, **overrides,
        common=CommonSettings(clinic_config_file=CLINIC_FILE),
        delivery=DeliverySettings(patient_web_url="http://testserver",
                                  link_secret=SecretStr("a-secret-only-the-tests-know-and-keep"),
                                  # A sandbox that is never called: the tests send nothing.
                                  twilio=TwilioSettings(auth_token=SecretStr(TWILIO_AUTH_TOKEN),
                                                        api_base_url="http://127.0.0.1:9")),
    )


@asynccontextmanager
async def aftercare_on(database_url: str, **settings: Any) -> AsyncIterator[Aftercare]:
    """The service built from the test's settings on a fresh database; nothing is sent or published."""
    clock = FixedClock(VISIT_ENDS)
    parts = bootstrap.build(settings_for(database_url, **settings), clock=clock, publisher=RecordingPublisher())
    await create_tables(parts.engine, AFTERCARE_SCHEMA)
    try:
        yield Aftercare(
            parts=parts, clock=clock, engine=parts.engine, clinic=parts.clinic, ledger=parts.ledger,
            store=parts.store, outbox=parts.outbox, consent=parts.consent, composer=parts.composer,
            links=parts.links, completed_visits=parts.completed_visits, answers=parts.answers,
            silence=parts.silence, health=parts.health,
        )
    finally:
        await parts.engine.dispose()


@pytest.fixture
async def aftercare(database_url: str) -> AsyncIterator[Aftercare]:
    async with aftercare_on(database_url) as desk:
        yield desk
