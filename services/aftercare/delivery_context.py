"""What a patient's phone really got last: the reminder texts the notifier reported sent, and aftercare's
own check-in texts as its ledger recorded them sent. A text from the phone is read against these
(`domain/reminder_replies.py`). A method that takes a connection runs in the caller's transaction.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.aftercare.domain.sent_reminders import ReminderReport
from services.aftercare.tables import check_ins, sent_reminders
from shared.database import insert_ignoring_duplicates, unindexed
from shared.ledger.model import DeliveryStatus
from shared.ledger.tables import deliveries

CHECK_IN_TEMPLATE = "soreness_check_in"
_NOT_DELIVERED = ("undelivered", "failed", "canceled")  # the provider's statuses of a text that did not arrive


class SentReminderStore:
    """The notifier's reminder texts, one row each, as its delivery reports left them."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def record(self, connection: AsyncConnection, reports: Sequence[ReminderReport], now: datetime) -> None:
        """Each text once, at its first report; a later report that it did not arrive withdraws it. A report
        applied again changes nothing."""
        if not reports:
            return
        rows: dict[str, dict[str, Any]] = {}
        for report in reports:  # the first report of a text in the batch gives its time
            rows.setdefault(report.delivery_id, {
                "delivery_id": report.delivery_id, "appointment_id": report.appointment_id, "step": report.step,
                "sent_at": report.at, "undelivered_at": None if report.reached else report.at, "recorded_at": now,
            })
        await connection.execute(insert_ignoring_duplicates(self.engine.dialect.name, sent_reminders),
                                 list(rows.values()))
        for report in reports:
            if not report.reached:
                await connection.execute(
                    update(sent_reminders)
                    .where(and_(sent_reminders.c.delivery_id == report.delivery_id,
                                sent_reminders.c.undelivered_at.is_(None)))
                    .values(undelivered_at=report.at))

    async def latest_reached(self, connection: AsyncConnection, appointment_ids: Sequence[str]) -> dict[str, datetime]:
        """When each appointment's latest reminder text that was not reported undelivered went out."""
        if not appointment_ids:
            return {}
        result = await connection.execute(
            select(sent_reminders.c.appointment_id, func.max(sent_reminders.c.sent_at).label("sent_at"))
            .where(and_(sent_reminders.c.appointment_id.in_(list(appointment_ids)),
                        sent_reminders.c.undelivered_at.is_(None)))
            .group_by(sent_reminders.c.appointment_id)
        )
        return {row.appointment_id: row.sent_at for row in result}


async def last_check_in_texted(connection: AsyncConnection, phone: str) -> datetime | None:
    """When aftercare's latest check-in text to this phone went out, by its ledger (not reported undelivered)."""
    of_phone = select(check_ins.c.appointment_id).where(check_ins.c.phone == phone)
    return (await connection.execute(
        select(func.max(deliveries.c.sent_at)).where(and_(
            deliveries.c.appointment_id.in_(of_phone), deliveries.c.channel == "sms",
            deliveries.c.template == CHECK_IN_TEMPLATE, deliveries.c.recipient == phone,
            unindexed(deliveries.c.status) == DeliveryStatus.SENT,  # by phone or appointment, not every text sent
            or_(deliveries.c.provider_status.is_(None), deliveries.c.provider_status.not_in(_NOT_DELIVERED)),
        ))
    )).scalar()
