"""The aftercare service's real pieces on a fresh database, with a clock the test moves."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aftercare.answers import CheckInAnswers
from services.aftercare.check_in_store import CheckInStore
from services.aftercare.consent import ConsentBook
from services.aftercare.handlers import CompletedVisitHandler
from services.aftercare.no_reply import NoReplyWatch
from services.aftercare.outbox import AFTERCARE_OUTBOX
from services.aftercare.tables import check_ins, consent_audit, replies
from shared.clinic_config import ClinicConfig, load_clinic_config
from shared.clock import FixedClock
from services.aftercare.tables import SCHEMA as AFTERCARE_SCHEMA
from shared.database import create_engine, create_tables
from shared.delivery.compose import MessageComposer
from shared.events.appointment import AppointmentCompleted
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.suppressions import SuppressionList
from shared.ledger.tables import deliveries, sms_suppressions
from shared.links import PatientLinks
from shared.templates.catalogue import TemplateCatalogue
from tests.support.events import booked, completed, patient

TORONTO = ZoneInfo("America/Toronto")
CLINIC_FILE = Path(__file__).resolve().parents[3] / "deploy" / "clinic.yaml"
VISIT_ENDS = datetime(2026, 6, 9, 16, 0, tzinfo=TORONTO)  # a Tuesday afternoon
ROUND_1 = VISIT_ENDS + timedelta(hours=24)
ROUND_2 = VISIT_ENDS + timedelta(hours=48)
PATIENT_PHONE = "+14165550123"
ON_CALL_EMAIL = "on-call@harbourfront-clinic.example"
ON_CALL_PHONE = "+14165550177"


@dataclass
class Aftercare:
    """The clinic's aftercare desk as production wires it (see services/aftercare/service.py)."""

    engine: AsyncEngine
    clock: FixedClock
    clinic: ClinicConfig
    ledger: DeliveryLedger
    store: CheckInStore
    consent: ConsentBook
    composer: MessageComposer
    links: PatientLinks
    completed_visits: CompletedVisitHandler
    answers: CheckInAnswers
    silence: NoReplyWatch

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
            await self.ledger.mark_sent(delivery.id, f"SM{delivery.id.replace('-', '')}", moment)

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
        table = AFTERCARE_OUTBOX.table
        rows = await self.rows(select(table).order_by(table.c.id))
        return [json.loads(row.value) | {"_topic": row.topic, "_key": row.key} for row in rows
                if row.headers.get("event_type") == event_type and (topic is None or row.topic == topic)]

    async def sms_suppressed(self) -> list[Any]:
        return await self.rows(select(sms_suppressions))

    async def consent_trail(self) -> list[Any]:
        return await self.rows(select(consent_audit).order_by(consent_audit.c.id))


def build_aftercare(engine: AsyncEngine, clock: FixedClock) -> Aftercare:
    clinic = load_clinic_config(CLINIC_FILE)
    links = PatientLinks("http://testserver", "a-secret-only-the-tests-know")
    ledger = DeliveryLedger(engine)
    store = CheckInStore(engine.dialect.name)
    consent = ConsentBook(SuppressionList(engine), AFTERCARE_OUTBOX)
    composer = MessageComposer(TemplateCatalogue(), clinic, links)
    shared = dict(engine=engine, store=store, ledger=ledger, outbox=AFTERCARE_OUTBOX, clinic=clinic, clock=clock)
    return Aftercare(
        engine=engine, clock=clock, clinic=clinic, ledger=ledger, store=store, consent=consent, composer=composer,
        links=links,
        completed_visits=CompletedVisitHandler(**shared),  # type: ignore[arg-type]
        answers=CheckInAnswers(consent=consent, composer=composer, **shared),  # type: ignore[arg-type]
        silence=NoReplyWatch(**shared),  # type: ignore[arg-type]
    )


@pytest.fixture
async def aftercare(database_url: str) -> AsyncIterator[Aftercare]:
    engine = create_engine(database_url)
    await create_tables(engine, AFTERCARE_SCHEMA)
    try:
        yield build_aftercare(engine, FixedClock(VISIT_ENDS))
    finally:
        await engine.dispose()
