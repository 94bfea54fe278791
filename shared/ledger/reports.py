"""Read-side reports on the delivery ledger for operators: nothing here names a patient."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.ledger.ledger import DeliveryLedger
from shared.ledger.model import Delivery, DeliveryStatus
from shared.ledger.tables import deliveries


@dataclass(frozen=True)
class FailedDelivery:
    appointment_id: str
    step: str
    channel: str
    template: str
    error_code: str | None
    reason: str | None
    updated_at: datetime


@dataclass(frozen=True)
class MessageHistory:
    """One message of an appointment and what became of it; no recipient, no body."""

    id: str
    step: str
    channel: str
    template: str
    appointment_version: int
    status: str
    attempts: int
    created_at: datetime  # intended
    attempt_started_at: datetime | None  # last claimed
    due_at: datetime
    sent_at: datetime | None  # handed to the provider
    provider_status: str | None
    provider_error_code: str | None
    provider_status_at: datetime | None
    error_code: str | None
    reason: str | None
    fallback_of: str | None
    updated_at: datetime


@dataclass(frozen=True)
class LedgerStatus:
    counts: dict[str, int]
    oldest_pending_due: datetime | None
    failed: list[FailedDelivery]


async def scheduled(engine: AsyncEngine, limit: int, appointment_id: str | None) -> list[Delivery]:
    """Messages still to send, soonest first; for one appointment, all of its messages."""
    ledger = DeliveryLedger(engine)
    if appointment_id is None:
        return await ledger.upcoming(limit)
    async with engine.connect() as connection:
        return (await ledger.for_appointment(connection, appointment_id))[:limit]


async def ledger_status(engine: AsyncEngine, failed_limit: int) -> LedgerStatus:
    counts = await DeliveryLedger(engine).counts_by_status()
    async with engine.connect() as connection:
        oldest = await connection.scalar(
            select(func.min(deliveries.c.due_at)).where(deliveries.c.status == DeliveryStatus.PENDING.value)
        )
        rows = await connection.execute(
            select(
                deliveries.c.appointment_id, deliveries.c.step, deliveries.c.channel, deliveries.c.template,
                deliveries.c.error_code, deliveries.c.reason, deliveries.c.updated_at,
            )
            .where(deliveries.c.status == DeliveryStatus.FAILED.value)
            .order_by(deliveries.c.updated_at.desc())
            .limit(failed_limit)
        )
        failed = [FailedDelivery(**row._asdict()) for row in rows]
    return LedgerStatus(counts=counts, oldest_pending_due=oldest, failed=failed)


async def appointment_history(engine: AsyncEngine, appointment_id: str) -> list[MessageHistory]:
    """Every message of the appointment, in the order they were intended."""
    columns = [deliveries.c[name] for name in MessageHistory.__dataclass_fields__]
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(*columns)
            .where(deliveries.c.appointment_id == appointment_id)
            .order_by(deliveries.c.created_at, deliveries.c.due_at, deliveries.c.step)
        )
        return [MessageHistory(**row._asdict()) for row in rows]
