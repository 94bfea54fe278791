"""The booking service's queries: appointments, idempotency keys and the outbox.

Methods that take a connection first join the caller's transaction, so a change, its event and its
idempotent response are committed together; the others open their own connection.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import BindParameter

from services.booking_events.domain.appointment import Appointment, AppointmentStatus
from services.booking_events.domain.idempotency import IdempotencyKey, StoredResponse
from services.booking_events.domain.series import SessionRow
from services.booking_events.tables import appointments, idempotency_keys, series_sessions
from services.booking_events.tables import outbox as outbox_table
from shared.database import insert_ignoring_duplicates
from shared.events import AppointmentEvent, PatientContact
from shared.events.appointment import AppointmentDetails
from shared.outbox.store import Outbox, OutboxBacklog, OutgoingEvent
from shared.topics import APPOINTMENTS

BOOKING_OUTBOX = Outbox(outbox_table)

# The statements a batch of commands runs, built once: building and keying a statement costs more
# than executing it on SQLite.
_IDS: BindParameter[str] = bindparam("ids", expanding=True)
_LOCK_AND_FIND_MANY = (update(appointments).where(appointments.c.appointment_id.in_(_IDS))
                       .values(sequence=appointments.c.sequence).returning(*appointments.c))
_IN_SERIES = select(series_sessions.c.appointment_id).where(series_sessions.c.appointment_id.in_(_IDS))
_INSERT_APPOINTMENTS = appointments.insert()
_INSERT_RESPONSES = idempotency_keys.insert()


class ConcurrentChange(Exception):
    """The appointment changed between our read and our write; the caller retries."""


class BookingStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.outbox = BOOKING_OUTBOX
        self._sqlite = engine.dialect.name == "sqlite"

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as connection:
            if self._sqlite:
                # SQLite's write lock from the start, so what the transaction reads before it writes
                # cannot be changed by another writer meanwhile. The process's writers take their turns
                # for it at the engine's write gate (shared/sqlite_driver.py), not in SQLite's busy
                # handler. PostgreSQL locks rows, and its writers go concurrently.
                await connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield connection

    # --- appointments ---------------------------------------------------------------------

    async def lock_appointment(self, connection: AsyncConnection, appointment_id: str) -> None:
        """Take the write lock on one appointment before reading it.

        A no-op UPDATE locks the row on PostgreSQL and takes SQLite's write lock, so the read that
        follows sees the latest state and no other change of this appointment can interleave.
        """
        await connection.execute(
            update(appointments)
            .where(appointments.c.appointment_id == appointment_id)
            .values(sequence=appointments.c.sequence)
        )

    async def lock_and_find_appointments(
        self, connection: AsyncConnection, appointment_ids: Sequence[str]
    ) -> dict[str, Appointment]:
        """`lock_appointment` for several appointments in one statement, which also reads them: the
        appointments of those ids that exist, by id, as they are under the lock."""
        rows = await connection.execute(_LOCK_AND_FIND_MANY, {"ids": list(appointment_ids)})
        return {row.appointment_id: _appointment(row) for row in rows}

    async def find_appointment(
        self, connection: AsyncConnection, appointment_id: str
    ) -> Appointment | None:
        row = (
            await connection.execute(
                select(appointments).where(appointments.c.appointment_id == appointment_id)
            )
        ).one_or_none()
        return None if row is None else _appointment(row)

    async def find_updated_at(
        self, connection: AsyncConnection, appointment_id: str
    ) -> datetime | None:
        return (
            await connection.execute(
                select(appointments.c.updated_at).where(
                    appointments.c.appointment_id == appointment_id
                )
            )
        ).scalar_one_or_none()

    async def read_appointment(self, appointment_id: str) -> tuple[Appointment | None, datetime | None]:
        """The appointment and when it last changed, read outside any change."""
        async with self.engine.connect() as connection:
            appointment = await self.find_appointment(connection, appointment_id)
            updated_at = await self.find_updated_at(connection, appointment_id)
        return appointment, updated_at

    async def save_appointment(
        self,
        connection: AsyncConnection,
        appointment: Appointment,
        previous_sequence: int | None,
        now: datetime,
    ) -> None:
        """Insert a new appointment, or update it only if nobody changed it since `previous_sequence`."""
        values = _columns(appointment, now)
        if previous_sequence is None:
            try:
                await connection.execute(
                    appointments.insert().values(
                        appointment_id=appointment.appointment_id, created_at=now, **values
                    )
                )
            except IntegrityError:  # booked by a concurrent request with the same id
                raise ConcurrentChange(appointment.appointment_id) from None
            return
        result = await connection.execute(
            update(appointments)
            .where(
                appointments.c.appointment_id == appointment.appointment_id,
                appointments.c.sequence == previous_sequence,
            )
            .values(**values)
        )
        if result.rowcount != 1:
            raise ConcurrentChange(appointment.appointment_id)

    async def insert_appointments(
        self, connection: AsyncConnection, new: Sequence[Appointment], now: datetime
    ) -> None:
        """Insert new appointments in one statement; ConcurrentChange if one was booked meanwhile."""
        if not new:
            return
        try:
            await connection.execute(_INSERT_APPOINTMENTS, [
                {"appointment_id": a.appointment_id, "created_at": now, **_columns(a, now)} for a in new
            ])
        except IntegrityError:  # booked by a concurrent request with the same id
            raise ConcurrentChange(new[0].appointment_id) from None

    # --- treatment plans ------------------------------------------------------------------

    async def in_series(self, connection: AsyncConnection, appointment_ids: Sequence[str]) -> set[str]:
        """Those of the appointments that are sessions of a treatment plan."""
        return set((await connection.execute(_IN_SERIES, {"ids": list(appointment_ids)})).scalars())

    async def series_exists(self, connection: AsyncConnection, series_id: str) -> bool:
        statement = select(series_sessions.c.appointment_id).where(series_sessions.c.series_id == series_id)
        return (await connection.execute(statement.limit(1))).first() is not None

    async def save_series(self, connection: AsyncConnection, rows: list[SessionRow]) -> None:
        try:
            await connection.execute(
                series_sessions.insert(),
                [
                    {"appointment_id": row.appointment_id, "series_id": row.series_id,
                     "session_number": row.session_number, "session_count": row.session_count}
                    for row in rows
                ],
            )
        except IntegrityError:  # booked by a concurrent request with the same ids
            raise ConcurrentChange(rows[0].series_id) from None

    async def find_series_rows(self, connection: AsyncConnection, appointment_id: str) -> list[SessionRow]:
        """Every session of the plan `appointment_id` belongs to, as stored now; empty outside a plan."""
        own = (
            select(series_sessions.c.series_id)
            .where(series_sessions.c.appointment_id == appointment_id)
            .scalar_subquery()
        )
        rows = await connection.execute(
            select(series_sessions, appointments.c.starts_at, appointments.c.status)
            .join(appointments, appointments.c.appointment_id == series_sessions.c.appointment_id)
            .where(series_sessions.c.series_id == own)
            .order_by(series_sessions.c.session_number)
        )
        return [
            SessionRow(row.appointment_id, row.series_id, row.session_number, row.session_count,
                       row.starts_at, AppointmentStatus(row.status))
            for row in rows
        ]

    # --- the outbox -----------------------------------------------------------------------

    async def add_event(
        self, connection: AsyncConnection, event: AppointmentEvent, now: datetime
    ) -> int:
        """Store the event in the caller's transaction, keyed by appointment; returns its outbox id."""
        return await self.outbox.add(
            connection, topic=APPOINTMENTS, key=event.appointment_id, event=event, now=now
        )

    async def add_events(
        self, connection: AsyncConnection, events: Sequence[AppointmentEvent], now: datetime
    ) -> None:
        """Store the events in the caller's transaction, in one statement, in this order."""
        await self.outbox.add_many(
            connection, [OutgoingEvent(APPOINTMENTS, event.appointment_id, event) for event in events], now
        )

    async def outbox_backlog(self) -> OutboxBacklog:
        return await self.outbox.backlog(self.engine)

    # --- idempotency keys -----------------------------------------------------------------

    async def find_response(self, key: IdempotencyKey) -> StoredResponse | None:
        statement = select(idempotency_keys).where(
            idempotency_keys.c.client == key.client, idempotency_keys.c.key == key.key
        )
        async with self.engine.connect() as connection:
            row = (await connection.execute(statement)).one_or_none()
        if row is None:
            return None
        return StoredResponse(row.fingerprint, row.status_code, json.loads(row.response_body))

    async def remember_response(
        self,
        connection: AsyncConnection,
        key: IdempotencyKey,
        status_code: int,
        body: dict[str, Any],
        now: datetime,
    ) -> bool:
        """Store the response in the caller's transaction; False when another request stored one first."""
        statement = insert_ignoring_duplicates(connection.dialect.name, idempotency_keys).values(
            client=key.client,
            key=key.key,
            fingerprint=key.fingerprint,
            status_code=status_code,
            response_body=json.dumps(body),
            created_at=now,
        )
        result = await connection.execute(statement)
        return result.rowcount == 1

    async def remember_responses(
        self,
        connection: AsyncConnection,
        responses: Sequence[tuple[IdempotencyKey, int, dict[str, Any]]],
        now: datetime,
    ) -> None:
        """Store the responses in the caller's transaction, in one statement.

        Raises IntegrityError when another request stored a response under one of the keys first.
        """
        if responses:
            await connection.execute(_INSERT_RESPONSES, [
                {"client": key.client, "key": key.key, "fingerprint": key.fingerprint, "status_code": status,
                 "response_body": json.dumps(body), "created_at": now}
                for key, status, body in responses
            ])

    async def forget_responses_before(self, cutoff: datetime) -> int:
        async with self.engine.begin() as connection:
            result = await connection.execute(
                delete(idempotency_keys).where(idempotency_keys.c.created_at < cutoff)
            )
        return max(result.rowcount, 0)


def _appointment(row: Any) -> Appointment:
    return Appointment(
        appointment_id=row.appointment_id,
        status=AppointmentStatus(row.status),
        sequence=row.sequence,
        patient=PatientContact.model_validate_json(row.patient),
        details=AppointmentDetails.model_validate_json(row.details),
    )


def _columns(appointment: Appointment, now: datetime) -> dict[str, Any]:
    return {
        "status": appointment.status.value,
        "sequence": appointment.sequence,
        "starts_at": appointment.details.starts_at,
        "location_id": appointment.details.location_id,
        "patient": appointment.patient.model_dump_json(),
        "details": appointment.details.model_dump_json(),
        "updated_at": now,
    }
