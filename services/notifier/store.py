"""The last known state of each appointment, so replayed or out-of-order events change nothing; and the
ledger reads and cancellations of a whole batch of events, each in one statement."""
from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from sqlalchemy import Text, bindparam, cast, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.notifier.domain.state import AppointmentState, AppointmentVersion
from services.notifier.tables import appointments
from shared.consumer import RetryableConflict
from shared.database import SerializedJson, among, unindexed
from shared.ledger.model import OPEN_STATUSES, DeliveryStatus
from shared.ledger.tables import deliveries

# The event is written as the state holds it (JSON text) and read back as stored.
_INSERT = appointments.insert().values(event=bindparam("event", type_=SerializedJson()))
_EVENT_AS_STORED = cast(appointments.c.event, Text).label("event")
# The statements a batch runs, built once; each takes the batch's appointment ids as one parameter.
_VERSIONS = select(appointments.c.appointment_id, appointments.c.last_sequence, appointments.c.status).where(
    among(appointments.c.appointment_id, "ids"))
_SENT_STEPS = (
    select(deliveries.c.appointment_id, deliveries.c.step, deliveries.c.sent_at)
    .where(among(deliveries.c.appointment_id, "ids"), unindexed(deliveries.c.status) == DeliveryStatus.SENT.value,
           deliveries.c.sent_at.is_not(None))
    .order_by(deliveries.c.due_at)
)
_DELETE = (delete(appointments).where(among(appointments.c.appointment_id, "ids"))
           .returning(appointments.c.appointment_id, appointments.c.last_sequence))
_CANCEL = (update(deliveries)
           .where(among(deliveries.c.appointment_id, "ids"),
                  or_(*(unindexed(deliveries.c.status) == status.value for status in OPEN_STATUSES)))
           .values(status=DeliveryStatus.CANCELLED.value, reason=bindparam("cancel_reason"), lease_until=None,
                   updated_at=bindparam("cancel_at")))


class ConcurrentAppointmentUpdate(RetryableConflict):
    """Another consumer changed this appointment first; the event must be processed again."""


class AppointmentStateStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def get(self, connection: AsyncConnection, appointment_id: str) -> AppointmentState | None:
        return (await self.get_many(connection, [appointment_id])).get(appointment_id)

    async def get_many(
        self, connection: AsyncConnection, appointment_ids: Collection[str]
    ) -> dict[str, AppointmentState]:
        """The known states among `appointment_ids`, in one query."""
        if not appointment_ids:
            return {}
        rows = await connection.execute(
            select(appointments.c.appointment_id, appointments.c.last_sequence, appointments.c.status, _EVENT_AS_STORED)
            .where(appointments.c.appointment_id.in_(list(appointment_ids)))
        )
        return {
            row.appointment_id: AppointmentState(row.appointment_id, row.last_sequence, row.status, row.event)
            for row in rows
        }

    async def versions(
        self, connection: AsyncConnection, appointment_ids: Collection[str]
    ) -> dict[str, AppointmentVersion]:
        """How far each known appointment among `appointment_ids` was applied, in one query (without its event)."""
        if not appointment_ids:
            return {}
        rows = await connection.execute(_VERSIONS, {"ids": appointment_ids})
        return {row.appointment_id: AppointmentVersion(*row) for row in rows}

    async def add_many(self, connection: AsyncConnection, states: Sequence[AppointmentState], now: datetime) -> None:
        """Appointments seen for the first time, in one statement."""
        if states:
            await connection.execute(_INSERT, [_row(state, now) for state in states])

    async def replace_many(
        self, connection: AsyncConnection, changes: Sequence[tuple[AppointmentState, AppointmentVersion]],
        now: datetime,
    ) -> None:
        """Each (new, previous) state replaces `previous`, in two statements for all of them; raises
        `ConcurrentAppointmentUpdate` (nothing is kept: the caller's transaction is rolled back) when
        another consumer replaced one of them first."""
        if not changes:
            return
        # By primary key (a row-value IN would scan the table); raising rolls back the deletion with the rest.
        replaced = dict((await connection.execute(
            _DELETE, {"ids": [previous.appointment_id for _, previous in changes]})).all())
        for state, previous in changes:
            if replaced.get(state.appointment_id) != previous.last_sequence:
                raise ConcurrentAppointmentUpdate(state.appointment_id)
        await connection.execute(_INSERT, [_row(state, now) for state, _ in changes])

    async def sent_steps(
        self, connection: AsyncConnection, appointment_ids: Collection[str]
    ) -> dict[str, dict[str, datetime]]:
        """Per appointment, each step of it already sent and when (the latest due, when sent twice), in
        one query; an appointment with nothing sent is absent."""
        if not appointment_ids:
            return {}
        rows = await connection.execute(_SENT_STEPS, {"ids": appointment_ids})
        sent: dict[str, dict[str, datetime]] = {}
        for row in rows:
            sent.setdefault(row.appointment_id, {})[row.step] = row.sent_at
        return sent

    async def cancel_pending(self, connection: AsyncConnection, reasons: Mapping[str, str], now: datetime) -> None:
        """Cancel what is still to be sent for each appointment, with its reason, in one statement per reason:
        what `DeliveryLedger.cancel_pending` does for one (a message claimed but not sent yet is cancelled too;
        its dispatcher checks the row again right before the provider call, and the claim token stays)."""
        by_reason: dict[str, list[str]] = {}
        for appointment_id, reason in reasons.items():
            by_reason.setdefault(reason, []).append(appointment_id)
        for reason, appointment_ids in by_reason.items():
            await connection.execute(_CANCEL, {"ids": appointment_ids, "cancel_reason": reason, "cancel_at": now})


def _row(state: AppointmentState, now: datetime) -> dict[str, object]:
    return {"appointment_id": state.appointment_id, "last_sequence": state.last_sequence, "status": state.status,
            "event": state.event, "updated_at": now}
