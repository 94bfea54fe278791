"""Applies the provider's status reports (Twilio's status callbacks) to the delivery ledger.

Each report is applied in one transaction: the message's provider status if it is further than the
recorded one (a repeat or a step backwards changes nothing and publishes nothing), its
`DeliveryStatusChanged` event, a 21610 (the patient replied STOP) suppressing the number as it does
when Twilio answers a create with it, and the fallback an undelivered SMS calls for.
"""
from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import Clock
from shared.delivery.outcomes import DeliveryOutcomes
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.model import is_staff_template
from shared.ledger.suppressions import SuppressionList
from shared.observability import get_logger

OPTED_OUT_CODE = "21610"
log = get_logger(__name__)


class ReportOutcome(StrEnum):
    RECORDED = "recorded"
    NOT_FURTHER = "not_further"  # a repeat, a step backwards, or a status we do not track
    UNKNOWN_MESSAGE = "unknown_message"  # not (yet) in the ledger: the send may not be recorded yet


class ProviderStatusReports:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        ledger: DeliveryLedger,
        suppressions: SuppressionList,
        outcomes: DeliveryOutcomes,
        clock: Clock,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        """`on_change` runs after a report was recorded: a fallback may be due, an event to publish."""
        self.engine = engine
        self.ledger = ledger
        self.suppressions = suppressions
        self.outcomes = outcomes
        self.clock = clock
        self.on_change = on_change

    async def apply(self, message_sid: str, status: str, error_code: str | None) -> ReportOutcome:
        now = self.clock.now()
        code = error_code or None
        async with self.engine.begin() as connection:
            moved = await self.ledger.record_provider_status(connection, message_sid, status, code, now)
            delivery = await self.ledger.by_provider_id(connection, message_sid)
            if delivery is None:
                return ReportOutcome.UNKNOWN_MESSAGE
            if not moved:
                return ReportOutcome.NOT_FURTHER
            staff = is_staff_template(delivery.template)
            if delivery.channel == "sms" and code == OPTED_OUT_CODE and not staff:
                await self.suppressions.suppress("sms", delivery.recipient, "carrier_opt_out", now, connection)
            fallback = await self.outcomes.record(connection, delivery, source="provider", status=status,
                                                  error_code=code, now=now)
        log.info("provider_status_recorded", delivery_id=delivery.id, channel=delivery.channel, status=status,
                 code=code, fallback_id=fallback.id if fallback else None)
        self.on_change()
        return ReportOutcome.RECORDED
