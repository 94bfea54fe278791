"""Opt-outs and opt-ins: honoured at once, kept as an audit trail, published for the other services."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from services.aftercare.tables import consent_audit
from shared.events.aftercare import ConsentChanged
from shared.ledger.suppressions import SuppressionList
from shared.outbox.store import Outbox
from shared.topics import CONSENT

ConsentSource = Literal["sms_keyword", "email_link", "carrier_opt_out", "sms_reply"]


class ConsentBook:
    def __init__(self, suppressions: SuppressionList, outbox: Outbox) -> None:
        self.suppressions = suppressions
        self.outbox = outbox

    async def opt_out_by_link(self, channel: Literal["sms", "email"], address: str, now: datetime) -> None:
        async with self.suppressions.engine.begin() as connection:
            await self.change(connection, channel, address, subscribed=False, source="email_link", now=now)

    async def change(self, connection: AsyncConnection, channel: Literal["sms", "email"], address: str, *,
                     subscribed: bool, source: ConsentSource, now: datetime) -> None:
        if subscribed:
            await self.suppressions.lift(channel, address, connection=connection)
        else:
            await self.suppressions.suppress(channel, address, source, now, connection=connection)
        await connection.execute(consent_audit.insert().values(
            channel=channel, address=address, subscribed=subscribed, source=source, occurred_at=now
        ))
        event = ConsentChanged(occurred_at=now, channel=channel, address=address, subscribed=subscribed, source=source)
        await self.outbox.add(connection, topic=CONSENT, key=address, event=event, now=now)
