"""What is recorded with each outcome of a message, in the transaction that records it: its
`DeliveryStatusChanged` event (through the service's outbox, when it has one) and, when the outcome
means the message cannot reach the patient on its channel, the fallback on the other channel."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.delivery.fallback import fallback_channel, fallback_step
from shared.events.deliveries import DeliveryStatusChanged
from shared.ledger.group_commit import RowInsert
from shared.ledger.ledger import AlsoRecord, DeliveryLedger
from shared.ledger.model import Delivery
from shared.outbox.store import Outbox
from shared.topics import DELIVERIES

Source = Literal["dispatcher", "provider"]


class DeliveryOutcomes:
    def __init__(self, *, service: str, ledger: DeliveryLedger, outbox: Outbox | None = None) -> None:
        self.service = service
        self.ledger = ledger
        self.outbox = outbox

    def also(
        self, delivery: Delivery, *, source: Source, status: str, now: datetime,
        error_code: str | None = None, reason: str | None = None,
    ) -> AlsoRecord:
        """`record`, for the ledger to do in the transaction of the outcome: when the outcome calls for no
        fallback (a message sent), only the event's row, which the ledger inserts with others."""
        if fallback_channel(delivery, status=status, error_code=error_code, reason=reason) is None:
            if self.outbox is None:
                return AlsoRecord()
            event = self._event(delivery, source=source, status=status, now=now, error_code=error_code,
                                reason=reason, fallback=None)
            return AlsoRecord(inserts=(RowInsert(self.outbox.insert, self.outbox.row(
                topic=DELIVERIES, key=delivery.appointment_id, event=event, now=now)),))

        async def record(connection: AsyncConnection) -> None:
            await self.record(connection, delivery, source=source, status=status, now=now,
                              error_code=error_code, reason=reason)
        return AlsoRecord(run=record)

    async def record(
        self, connection: AsyncConnection, delivery: Delivery, *, source: Source, status: str, now: datetime,
        error_code: str | None = None, reason: str | None = None,
    ) -> Delivery | None:
        """Record the fallback this outcome calls for (returned, if one was recorded) and the event."""
        channel = fallback_channel(delivery, status=status, error_code=error_code, reason=reason)
        fallback = None
        if channel is not None:
            step = fallback_step(delivery.step)
            fallback = await self.ledger.record_fallback(connection, delivery, channel, step, now)
        if self.outbox is not None:
            event = self._event(delivery, source=source, status=status, now=now, error_code=error_code,
                                reason=reason, fallback=fallback)
            await self.outbox.add(connection, topic=DELIVERIES, key=delivery.appointment_id, event=event, now=now)
        return fallback

    def _event(
        self, delivery: Delivery, *, source: Source, status: str, now: datetime, error_code: str | None,
        reason: str | None, fallback: Delivery | None,
    ) -> DeliveryStatusChanged:
        return DeliveryStatusChanged(
            occurred_at=now, appointment_id=delivery.appointment_id, delivery_id=delivery.id,
            service=self.service, step=delivery.step, channel=_channel(delivery.channel),
            template=delivery.template, source=source, status=status, error_code=error_code, reason=reason,
            fallback_channel=_channel(fallback.channel) if fallback is not None else None,
            fallback_of=delivery.fallback_of,
        )


def _channel(name: str) -> Literal["sms", "email"]:
    if name not in ("sms", "email"):
        raise ValueError(f"unknown channel {name!r}")
    return "sms" if name == "sms" else "email"
