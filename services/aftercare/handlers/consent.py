"""Opt-outs and opt-ins: honoured at once, kept as an audit trail, published for the other services."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from services.aftercare.domain.answers import ConsentChange
from services.aftercare.store import ConsentTrail
from shared.clock import Clock
from shared.events.aftercare import ConsentChanged
from shared.ledger.suppressions import SuppressionList
from shared.outbox.store import Outbox
from shared.topics import CONSENT


class ConsentBook:
    def __init__(self, *, suppressions: SuppressionList, trail: ConsentTrail, outbox: Outbox, clock: Clock,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.suppressions = suppressions
        self.trail = trail
        self.outbox = outbox
        self.clock = clock
        self.on_change = on_change

    async def unsubscribe(self, channel: Literal["sms", "email"], address: str) -> None:
        """The patient followed an unsubscribe link (or the mail client's one-click unsubscribe)."""
        now = self.clock.now()
        async with self.trail.engine.begin() as connection:
            await self.change(connection, ConsentChange(channel, address, subscribed=False, source="email_link"), now)
        self.on_change()

    async def change(self, connection: AsyncConnection, change: ConsentChange, now: datetime) -> None:
        if change.subscribed:
            await self.suppressions.lift(change.channel, change.address, connection=connection)
        else:
            await self.suppressions.suppress(change.channel, change.address, change.source, now, connection=connection)
        await self.trail.add(connection, change, now)
        event = ConsentChanged(occurred_at=now, channel=change.channel, address=change.address,
                               subscribed=change.subscribed, source=change.source)
        await self.outbox.add(connection, topic=CONSENT, key=change.address, event=event, now=now)
