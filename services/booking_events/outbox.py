"""The booking service's outbox: each accepted change stores its event in the same transaction."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking_events.tables import outbox as outbox_table
from shared.events import AppointmentEvent
from shared.outbox.store import Outbox
from shared.topics import APPOINTMENTS

BOOKING_OUTBOX = Outbox(outbox_table)


async def add_event(connection: AsyncConnection, event: AppointmentEvent, now: datetime) -> int:
    """Store the event in the caller's transaction, keyed by appointment; returns its outbox id."""
    return await BOOKING_OUTBOX.add(connection, topic=APPOINTMENTS, key=event.appointment_id, event=event, now=now)
