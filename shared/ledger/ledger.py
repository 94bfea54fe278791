"""The delivery ledger: durable record of every intended message and of what became of it."""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.database import insert_ignoring_duplicates, is_postgres
from shared.ledger.model import OPEN_STATUSES, Delivery, DeliveryIntent, DeliveryStatus
from shared.ledger.tables import deliveries


def _row_to_delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        id=row.id,
        appointment_id=row.appointment_id,
        step=row.step,
        channel=row.channel,
        appointment_version=row.appointment_version,
        template=row.template,
        recipient=row.recipient,
        locale=row.locale,
        context=row.context,
        scheduled_for=row.scheduled_for,
        due_at=row.due_at,
        expires_at=row.expires_at,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        sent_at=row.sent_at,
        reason=row.reason,
        error_code=row.error_code,
        provider_id=row.provider_id,
    )


class DeliveryLedger:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # --- recording intents (inside the caller's transaction) ---

    async def record(
        self, connection: AsyncConnection, intents: Iterable[DeliveryIntent], now: datetime
    ) -> int:
        """Record intents; an intent already recorded (same appointment, step, channel, version) is kept as is."""
        rows = [
            {
                "id": str(uuid.uuid4()),
                "appointment_id": intent.appointment_id,
                "step": intent.step,
                "channel": intent.channel,
                "appointment_version": intent.appointment_version,
                "template": intent.template,
                "recipient": intent.recipient,
                "locale": intent.locale,
                "context": intent.context,
                "scheduled_for": intent.due_at,
                "due_at": intent.due_at,
                "expires_at": intent.expires_at,
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for intent in intents
        ]
        if not rows:
            return 0
        statement = insert_ignoring_duplicates(self.engine.dialect.name, deliveries).returning(
            deliveries.c.id
        )
        result = await connection.execute(statement, rows)
        return len(result.all())

    async def cancel_pending(
        self,
        connection: AsyncConnection,
        appointment_id: str,
        reason: str,
        now: datetime,
        templates: Sequence[str] | None = None,
    ) -> int:
        conditions = [
            deliveries.c.appointment_id == appointment_id,
            deliveries.c.status == DeliveryStatus.PENDING.value,
        ]
        if templates is not None:
            conditions.append(deliveries.c.template.in_(list(templates)))
        result = await connection.execute(
            update(deliveries)
            .where(and_(*conditions))
            .values(status=DeliveryStatus.CANCELLED.value, reason=reason, updated_at=now)
        )
        return result.rowcount

    async def cancel_pending_to(
        self, connection: AsyncConnection, channel: str, recipient: str, reason: str, now: datetime
    ) -> int:
        """Cancel what is still to be sent to one address on one channel (an opt-out)."""
        result = await connection.execute(
            update(deliveries)
            .where(
                and_(
                    deliveries.c.channel == channel,
                    deliveries.c.recipient == recipient,
                    deliveries.c.status == DeliveryStatus.PENDING.value,
                )
            )
            .values(status=DeliveryStatus.CANCELLED.value, reason=reason, updated_at=now)
        )
        return result.rowcount

    async def for_appointment(self, connection: AsyncConnection, appointment_id: str) -> list[Delivery]:
        result = await connection.execute(
            select(deliveries)
            .where(deliveries.c.appointment_id == appointment_id)
            .order_by(deliveries.c.due_at)
        )
        return [_row_to_delivery(row) for row in result]

    # --- dispatching ---

    async def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[Delivery]:
        """Take up to `limit` due messages for this dispatcher alone, until the lease ends.

        A message left in SENDING by a dispatcher that died is due again once its lease ends.
        On PostgreSQL, rows another dispatcher is claiming are skipped, not waited for.
        """
        due = or_(
            and_(deliveries.c.status == DeliveryStatus.PENDING.value, deliveries.c.due_at <= now),
            and_(deliveries.c.status == DeliveryStatus.SENDING.value, deliveries.c.lease_until <= now),
        )
        query = select(deliveries.c.id).where(due).order_by(deliveries.c.due_at).limit(limit)
        if is_postgres(self.engine):
            query = query.with_for_update(skip_locked=True)
        async with self.engine.begin() as connection:
            ids = [row.id for row in await connection.execute(query)]
            if not ids:
                return []
            result = await connection.execute(
                update(deliveries)
                .where(and_(deliveries.c.id.in_(ids), due))
                .values(
                    status=DeliveryStatus.SENDING.value,
                    lease_until=now + lease,
                    attempts=deliveries.c.attempts + 1,
                    updated_at=now,
                )
                .returning(*deliveries.c)
            )
            return sorted((_row_to_delivery(row) for row in result), key=lambda d: d.due_at)

    async def next_due_at(self) -> datetime | None:
        async with self.engine.connect() as connection:
            pending = await connection.scalar(
                select(func.min(deliveries.c.due_at)).where(
                    deliveries.c.status == DeliveryStatus.PENDING.value
                )
            )
            leased = await connection.scalar(
                select(func.min(deliveries.c.lease_until)).where(
                    deliveries.c.status == DeliveryStatus.SENDING.value
                )
            )
        candidates = [moment for moment in (pending, leased) if moment is not None]
        return min(candidates) if candidates else None

    async def mark_sent(self, delivery_id: str, provider_id: str, now: datetime) -> None:
        await self._finish(
            delivery_id, now, status=DeliveryStatus.SENT, provider_id=provider_id, sent_at=now
        )

    async def mark_failed(self, delivery_id: str, reason: str, code: str | None, now: datetime) -> None:
        await self._finish(delivery_id, now, status=DeliveryStatus.FAILED, reason=reason, error_code=code)

    async def mark_skipped(self, delivery_id: str, reason: str, now: datetime) -> None:
        await self._finish(delivery_id, now, status=DeliveryStatus.SKIPPED, reason=reason)

    async def retry_later(
        self, delivery_id: str, due_at: datetime, reason: str, code: str | None, now: datetime
    ) -> None:
        await self._finish(
            delivery_id, now, status=DeliveryStatus.PENDING, due_at=due_at, reason=reason, error_code=code
        )

    async def _finish(self, delivery_id: str, now: datetime, **values: object) -> None:
        status = values.pop("status")
        assert isinstance(status, DeliveryStatus)
        async with self.engine.begin() as connection:
            await connection.execute(
                update(deliveries)
                .where(
                    and_(
                        deliveries.c.id == delivery_id,
                        deliveries.c.status == DeliveryStatus.SENDING.value,
                    )
                )
                .values(status=status.value, lease_until=None, updated_at=now, **values)
            )

    # --- for operators ---

    async def counts_by_status(self) -> dict[str, int]:
        async with self.engine.connect() as connection:
            result = await connection.execute(
                select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
            )
            return {row[0]: row[1] for row in result}

    async def upcoming(self, limit: int = 50) -> list[Delivery]:
        async with self.engine.connect() as connection:
            result = await connection.execute(
                select(deliveries)
                .where(deliveries.c.status.in_([s.value for s in OPEN_STATUSES]))
                .order_by(deliveries.c.due_at)
                .limit(limit)
            )
            return [_row_to_delivery(row) for row in result]
