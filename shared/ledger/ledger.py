"""The delivery ledger: durable record of every intended message and of what became of it."""
from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.database import insert_ignoring_duplicates, is_postgres
from shared.ledger.model import (
    OPEN_STATUSES,
    STAFF_TEMPLATE_PREFIX,
    Delivery,
    DeliveryIntent,
    DeliveryStatus,
)
from shared.ledger.provider_status import KNOWN_PROVIDER_STATUSES, statuses_it_moves
from shared.ledger.tables import deliveries

_NOT_SENT_YET = deliveries.c.status.in_([DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value])
_STILL_CLAIMED = deliveries.c.status == DeliveryStatus.SENDING.value

# Run in the transaction that records an outcome: what must be recorded with it (its event, a fallback).
AlsoRecord = Callable[[AsyncConnection], Awaitable[None]]


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
        claim_token=row.claim_token,
        provider_status=row.provider_status,
        provider_error_code=row.provider_error_code,
        provider_status_at=row.provider_status_at,
        fallback_recipient=row.fallback_recipient,
        fallback_of=row.fallback_of,
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
                "fallback_recipient": intent.fallback_recipient,
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
        """Cancel what is still to be sent for an appointment, including messages a dispatcher has
        claimed but not sent yet: it checks the row again right before the provider call."""
        conditions = [deliveries.c.appointment_id == appointment_id, _NOT_SENT_YET]
        if templates is not None:
            conditions.append(deliveries.c.template.in_(list(templates)))
        return await self._cancel(connection, conditions, reason, now)

    async def cancel_pending_to(
        self, connection: AsyncConnection, channel: str, recipient: str, reason: str, now: datetime
    ) -> int:
        """Cancel what is still to be sent to one address on one channel (an opt-out).

        Staff messages stay: a clinician who once opted out as a patient still gets escalations."""
        conditions = [
            deliveries.c.channel == channel,
            deliveries.c.recipient == recipient,
            _NOT_SENT_YET,
            ~deliveries.c.template.startswith(STAFF_TEMPLATE_PREFIX, autoescape=True),
        ]
        return await self._cancel(connection, conditions, reason, now)

    async def _cancel(
        self, connection: AsyncConnection, conditions: list[ColumnElement[bool]], reason: str, now: datetime
    ) -> int:
        # The claim token stays: a send already in flight still records that it went out.
        result = await connection.execute(
            update(deliveries)
            .where(and_(*conditions))
            .values(status=DeliveryStatus.CANCELLED.value, reason=reason, lease_until=None, updated_at=now)
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

    async def claim_due(
        self, now: datetime, limit: int, lease: timedelta, channel: str | None = None
    ) -> list[Delivery]:
        """Take up to `limit` due messages (of one channel, if given) for this dispatcher alone.

        Each claim gets a new `claim_token`; only its holder can record the outcome. A message left
        in SENDING by a dispatcher that stopped is due again once its lease ends; it comes back with
        `unknown_outcome_since` set, as it may have gone out. On PostgreSQL, rows another
        dispatcher is claiming are skipped, not waited for.
        """
        if limit <= 0:
            return []
        due = or_(
            and_(deliveries.c.status == DeliveryStatus.PENDING.value, deliveries.c.due_at <= now),
            and_(deliveries.c.status == DeliveryStatus.SENDING.value, deliveries.c.lease_until <= now),
        )
        if channel is not None:
            due = and_(due, deliveries.c.channel == channel)
        query = (
            select(deliveries.c.id, deliveries.c.status, deliveries.c.attempt_started_at)
            .where(due)
            .order_by(deliveries.c.due_at)
            .limit(limit)
        )
        if is_postgres(self.engine):
            query = query.with_for_update(skip_locked=True)
        token = str(uuid.uuid4())
        async with self.engine.begin() as connection:
            found = {row.id: row for row in await connection.execute(query)}
            if not found:
                return []
            result = await connection.execute(
                update(deliveries)
                .where(and_(deliveries.c.id.in_(list(found)), due))
                .values(
                    status=DeliveryStatus.SENDING.value,
                    lease_until=now + lease,
                    claim_token=token,
                    attempt_started_at=now,
                    attempts=deliveries.c.attempts + 1,
                    updated_at=now,
                )
                .returning(*deliveries.c)
            )
            claimed = []
            for row in result:
                before = found[row.id]
                unknown_since = None
                if before.status == DeliveryStatus.SENDING.value:
                    unknown_since = before.attempt_started_at or now - lease
                claimed.append(replace(_row_to_delivery(row), unknown_outcome_since=unknown_since))
            return sorted(claimed, key=lambda d: d.due_at)

    async def begin_attempt(self, delivery: Delivery, now: datetime, lease: timedelta) -> bool:
        """Right before the provider call: is the message still ours to send (claimed by us, not
        cancelled)? If so, the lease runs from now."""
        return await self._update_claimed(
            delivery, _STILL_CLAIMED, lease_until=now + lease, updated_at=now
        )

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

    async def mark_sent(
        self, delivery: Delivery, provider_id: str, now: datetime, also: AlsoRecord | None = None
    ) -> bool:
        """Record that the message went out; also when it was cancelled while in flight (the truth)."""
        sent = deliveries.c.status.in_([DeliveryStatus.SENDING.value, DeliveryStatus.CANCELLED.value])
        return await self._update_claimed(
            delivery, sent, also, status=DeliveryStatus.SENT.value, provider_id=provider_id, sent_at=now,
            lease_until=None, updated_at=now,
        )

    async def mark_failed(
        self, delivery: Delivery, reason: str, code: str | None, now: datetime, also: AlsoRecord | None = None
    ) -> bool:
        return await self._finish(delivery, now, also, status=DeliveryStatus.FAILED, reason=reason, error_code=code)

    async def mark_skipped(
        self, delivery: Delivery, reason: str, now: datetime, also: AlsoRecord | None = None
    ) -> bool:
        return await self._finish(delivery, now, also, status=DeliveryStatus.SKIPPED, reason=reason)

    async def retry_later(
        self,
        delivery: Delivery,
        due_at: datetime,
        reason: str,
        code: str | None,
        now: datetime,
        *,
        charge_attempt: bool = True,
    ) -> bool:
        """Back to PENDING until `due_at`; `charge_attempt=False` when the message itself was not at
        fault (the whole channel was unavailable)."""
        values: dict[str, object] = {"due_at": due_at, "reason": reason, "error_code": code}
        if not charge_attempt:
            values["attempts"] = deliveries.c.attempts - 1
        return await self._finish(delivery, now, None, status=DeliveryStatus.PENDING, **values)

    async def _finish(
        self, delivery: Delivery, now: datetime, also: AlsoRecord | None, *, status: DeliveryStatus, **values: object
    ) -> bool:
        return await self._update_claimed(
            delivery, _STILL_CLAIMED, also, status=status.value, lease_until=None, updated_at=now, **values
        )

    async def _update_claimed(
        self, delivery: Delivery, condition: ColumnElement[bool], also: AlsoRecord | None = None, **values: object
    ) -> bool:
        """Change the row only under the claim this dispatcher holds: a dispatcher whose lease ran
        out and whose message was claimed again, or cancelled, changes nothing. `also` runs in the
        same transaction, only when the row changed."""
        if delivery.claim_token is None:
            raise ValueError("only a claimed delivery can be updated")
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(deliveries)
                .where(
                    and_(
                        deliveries.c.id == delivery.id,
                        deliveries.c.claim_token == delivery.claim_token,
                        condition,
                    )
                )
                .values(**values)
            )
            if result.rowcount == 1 and also is not None:
                await also(connection)
        return result.rowcount == 1

    # --- what the provider reports, and fallbacks (inside the caller's transaction) ---

    async def record_provider_status(
        self, connection: AsyncConnection, provider_id: str, status: str, error_code: str | None, now: datetime
    ) -> bool:
        """Record the provider's status of the message it knows as `provider_id`, if it is further
        than the one recorded (shared/ledger/provider_status.py); False when it changed nothing."""
        if status not in KNOWN_PROVIDER_STATUSES:
            return False
        recorded = deliveries.c.provider_status
        moves = sorted(statuses_it_moves(status))
        result = await connection.execute(
            update(deliveries)
            .where(deliveries.c.provider_id == provider_id,
                   or_(recorded.is_(None), recorded.in_(moves)) if moves else recorded.is_(None))
            .values(provider_status=status, provider_error_code=error_code, provider_status_at=now, updated_at=now)
        )
        return result.rowcount > 0

    async def by_provider_id(self, connection: AsyncConnection, provider_id: str) -> Delivery | None:
        row = (await connection.execute(
            select(deliveries).where(deliveries.c.provider_id == provider_id).limit(1)
        )).first()
        return _row_to_delivery(row) if row is not None else None

    async def record_fallback(
        self, connection: AsyncConnection, original: Delivery, channel: str, step: str, now: datetime
    ) -> Delivery | None:
        """Record `original` again on `channel`, to its `fallback_recipient`, due now, as `step`, once;
        not when the appointment already has this message (same template and version) on `channel`."""
        if original.fallback_recipient is None:
            return None
        copy = await connection.scalar(
            select(deliveries.c.id).where(
                deliveries.c.appointment_id == original.appointment_id,
                deliveries.c.appointment_version == original.appointment_version,
                deliveries.c.template == original.template,
                deliveries.c.channel == channel,
            ).limit(1)
        )
        if copy is not None:
            return None
        row = {
            "id": str(uuid.uuid4()), "appointment_id": original.appointment_id, "step": step, "channel": channel,
            "appointment_version": original.appointment_version, "template": original.template,
            "recipient": original.fallback_recipient, "locale": original.locale, "context": original.context,
            "scheduled_for": now, "due_at": now, "expires_at": original.expires_at,
            "status": DeliveryStatus.PENDING.value, "attempts": 0, "fallback_of": original.id,
            "created_at": now, "updated_at": now,
        }
        statement = insert_ignoring_duplicates(self.engine.dialect.name, deliveries).values(row)
        inserted = (await connection.execute(statement.returning(*deliveries.c))).first()
        return _row_to_delivery(inserted) if inserted is not None else None

    async def due_backlog(self, now: datetime) -> tuple[int, datetime | None]:
        """How many pending messages are due now, and the due time of the oldest of them."""
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(func.count(), func.min(deliveries.c.due_at)).where(
                        and_(deliveries.c.status == DeliveryStatus.PENDING.value, deliveries.c.due_at <= now)
                    )
                )
            ).one()
        return int(row[0]), row[1]

    # --- for operators ---

    async def provider_ids_to(self, channel: str, recipient: str) -> frozenset[str]:
        """The provider's ids of every message to this address already on record."""
        async with self.engine.connect() as connection:
            result = await connection.execute(
                select(deliveries.c.provider_id).where(
                    deliveries.c.channel == channel,
                    deliveries.c.recipient == recipient,
                    deliveries.c.provider_id.is_not(None),
                )
            )
            return frozenset(row.provider_id for row in result)

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
