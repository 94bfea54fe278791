"""The delivery ledger: durable record of every intended message and of what became of it.

What a dispatcher writes (claims, the check before each provider call, outcomes) goes through a group
commit (`shared/ledger/group_commit.py`): the writes asked for while a transaction is being committed
share the next one. Each stays a statement conditional on its own claim token, and each caller learns
whether its own row changed; one commit (one fsync on SQLite) serves every send that finished meanwhile.
"""
from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    Update,
    and_,
    bindparam,
    func,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.database import among, insert_ignoring_duplicates, is_postgres, unindexed
from shared.ledger.group_commit import GroupCommit, RowInsert, RowUpdate
from shared.ledger.model import (
    CHANNELS,
    OPEN_STATUSES,
    STAFF_TEMPLATE_PREFIX,
    Delivery,
    DeliveryIntent,
    DeliveryStatus,
    is_staff_template,
)
from shared.ledger.provider_status import KNOWN_PROVIDER_STATUSES, statuses_it_moves
from shared.ledger.recording import record_intents
from shared.ledger.suppressions import normalise, opted_out, opted_out_among
from shared.ledger.tables import deliveries

_NOT_SENT_YET = deliveries.c.status.in_([DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value])
# Conditions on the row a dispatcher changes, besides its claim token.
_STILL_CLAIMED = "still claimed"
_SENT_OR_CANCELLED = "sending, or cancelled while in flight"
_CONDITIONS = {
    _STILL_CLAIMED: deliveries.c.status == DeliveryStatus.SENDING.value,
    # Not IN: its list would be expanded at each execution, which executemany cannot do.
    _SENT_OR_CANCELLED: or_(deliveries.c.status == DeliveryStatus.SENDING.value,
                            deliveries.c.status == DeliveryStatus.CANCELLED.value),
}



@dataclass(frozen=True)
class AlsoRecord:
    """What must be recorded with an outcome, in its transaction, only when the outcome is recorded: rows
    to insert (its event; the rows of outcomes recorded together go in one statement), then `run` (what
    needs to read first: a fallback)."""

    inserts: tuple[RowInsert, ...] = ()
    run: Callable[[AsyncConnection], Awaitable[None]] | None = None


# The statements a dispatcher runs for every message are built once, their values left as parameters:
# building a statement costs more than running it.
_THE_CLAIM = and_(deliveries.c.id == bindparam("held_id"), deliveries.c.claim_token == bindparam("held_token"))
_STILL_OURS = select(deliveries.c.id).where(_THE_CLAIM, _CONDITIONS[_STILL_CLAIMED])


def _claim_of(delivery: Delivery) -> dict[str, str]:
    if delivery.claim_token is None:
        raise ValueError("only a claimed delivery can be updated")
    return {"held_id": delivery.id, "held_token": delivery.claim_token}


def _new(*columns: str) -> dict[str, Any]:
    return {name: bindparam(f"new_{name}", type_=deliveries.c[name].type) for name in columns}


@functools.cache
def _claimed_update(condition: str, columns: tuple[str, ...], refund_attempt: bool) -> Update:
    values = _new(*columns)
    if refund_attempt:
        values["attempts"] = deliveries.c.attempts - 1
    return update(deliveries).where(_THE_CLAIM, _CONDITIONS[condition]).values(values)


@functools.cache
def _begin_statement(opt_out_channel: str | None) -> Update:
    """None: a staff message, which no opt-out stops."""
    wanted = and_(_THE_CLAIM, _CONDITIONS[_STILL_CLAIMED])
    if opt_out_channel is not None:
        wanted = and_(wanted, ~opted_out(opt_out_channel, bindparam("opted_out_address")))
    return update(deliveries).where(wanted).values(_new("lease_until", "updated_at"))


@functools.cache
def _claim_statements(of_one_channel: bool, skip_locked: bool) -> tuple[Select[Any], Update]:
    """The claim's two statements: find the earliest due (and lock them, skipping rows another
    dispatcher holds), then take them.

    A message is due when it is pending and its time has come, or when it is being sent and its lease
    ran out. The two are looked for apart, each the earliest first along the (status, due_at) index,
    and only then put together: asked for at once (`a OR b ORDER BY due_at`), the database cannot walk
    one index in order for both, so it read and sorted every due row to return the first few (on
    PostgreSQL, 100,000 due among a million: 0.3 s a claim)."""
    now = bindparam("claim_now", type_=deliveries.c.due_at.type)
    limit = bindparam("claim_limit", type_=Integer())

    def due(status: ColumnElement[Any]) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        """Pending and its time come; being sent and its lease over."""
        return (and_(status == DeliveryStatus.PENDING.value, deliveries.c.due_at <= now),
                and_(status == DeliveryStatus.SENDING.value, deliveries.c.lease_until <= now))

    pending, lease_over = due(deliveries.c.status)
    of_channel = deliveries.c.channel == bindparam("claim_channel") if of_one_channel else true()

    def earliest(due: ColumnElement[bool]) -> Select[Any]:
        found = (select(deliveries.c.id, deliveries.c.status, deliveries.c.attempt_started_at, deliveries.c.due_at)
                 .where(due, of_channel).order_by(deliveries.c.due_at).limit(limit))
        if skip_locked:
            found = found.with_for_update(skip_locked=True)
        return select(found.subquery())  # a locking SELECT may stand in a UNION only as a subquery

    both = union_all(earliest(pending), earliest(lease_over)).subquery()
    find = select(both).order_by(both.c.due_at).limit(limit)
    # Taken by their ids; still due is checked again, not looked up by the status index, along which SQLite
    # (no statistics) walked every due row of the channel for each claim of a dozen.
    still_due = or_(*due(unindexed(deliveries.c.status)))
    take = (
        update(deliveries)
        .where(among(deliveries.c.id, "claim_ids"), still_due, of_channel)
        .values(status=DeliveryStatus.SENDING.value, attempts=deliveries.c.attempts + 1,
                **_new("lease_until", "claim_token", "attempt_started_at", "updated_at"))
        .returning(*deliveries.c)
    )
    return find, take


@dataclass(frozen=True)
class Claimed:
    delivery: Delivery
    opted_out: bool  # a patient's message to an address opted out of its channel: not to be sent


class AttemptStart(Enum):
    """What the check right before the provider call found."""

    STARTED = "started"  # still ours and wanted: send it; the lease runs from now
    NOT_WANTED = "not_wanted"  # cancelled, or claimed again after our lease ran out: do not send
    OPTED_OUT = "opted_out"  # a patient's message to an address opted out of the channel: do not send


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
        self._writes: GroupCommit[Any] = GroupCommit(engine)

    # --- recording intents (inside the caller's transaction) ---

    async def record(
        self, connection: AsyncConnection, intents: Iterable[DeliveryIntent], now: datetime
    ) -> int:
        """Record intents; an intent already recorded (same appointment, step, channel, version) is kept as is.
        How many were new."""
        return await record_intents(connection, list(intents), now)

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

        async def claim(connection: AsyncConnection) -> list[Delivery]:
            return await self._claim(connection, now, limit, lease, channel)

        claimed: list[Delivery] = await self._writes.run(claim)
        return claimed

    async def claim_to_send(self, now: datetime, limit: int, lease: timedelta, channel: str) -> list[Claimed]:
        """`claim_due`, for messages whose provider call comes next: the claim is then the check before
        the call (a message still due is not cancelled; the lease runs from now), and says of each,
        in the same transaction, whether its address opted out of the channel (staff messages aside)."""
        if limit <= 0:
            return []

        async def claim(connection: AsyncConnection) -> list[Claimed]:
            claimed = await self._claim(connection, now, limit, lease, channel)
            patients = {d.id: normalise(channel, d.recipient) for d in claimed if not is_staff_template(d.template)}
            opted: set[str] = set()
            if patients:
                addresses = {"addresses": sorted(set(patients.values()))}
                opted = set(await connection.scalars(opted_out_among(channel), addresses))
            return [Claimed(d, patients.get(d.id) in opted) for d in claimed]

        claimed: list[Claimed] = await self._writes.run(claim)
        return claimed

    async def _claim(
        self, connection: AsyncConnection, now: datetime, limit: int, lease: timedelta, channel: str | None
    ) -> list[Delivery]:
        find, take = _claim_statements(channel is not None, is_postgres(self.engine))
        parameters = {"claim_now": now, "claim_channel": channel, "claim_limit": limit}
        found = {row.id: row for row in await connection.execute(find, parameters)}
        if not found:
            return []
        result = await connection.execute(take, {
            **parameters, "claim_ids": list(found), "new_lease_until": now + lease,
            "new_claim_token": str(uuid.uuid4()), "new_attempt_started_at": now, "new_updated_at": now,
        })
        claimed = []
        for row in result:
            before = found[row.id]
            unknown_since = None
            if before.status == DeliveryStatus.SENDING.value:
                unknown_since = before.attempt_started_at or now - lease
            claimed.append(replace(_row_to_delivery(row), unknown_outcome_since=unknown_since))
        return sorted(claimed, key=lambda d: d.due_at)

    async def begin_attempt(self, delivery: Delivery, now: datetime, lease: timedelta) -> AttemptStart:
        """Right before the provider call: is the message still ours to send (claimed by us, not
        cancelled) and, unless it is a staff message, is its address not opted out of the channel?
        If so, the lease runs from now. One conditional UPDATE."""
        staff = is_staff_template(delivery.template)
        statement = _begin_statement(None if staff else delivery.channel)
        parameters = {
            **_claim_of(delivery), "new_lease_until": now + lease, "new_updated_at": now,
            "opted_out_address": normalise(delivery.channel, delivery.recipient),
        }

        async def attempt(connection: AsyncConnection) -> AttemptStart:
            if (await connection.execute(statement, parameters)).rowcount == 1:
                return AttemptStart.STARTED
            # Nothing changed: only now is it worth asking why.
            if staff or await connection.scalar(_STILL_OURS, parameters) is None:
                return AttemptStart.NOT_WANTED
            return AttemptStart.OPTED_OUT

        started: AttemptStart = await self._writes.run(
            attempt, RowUpdate(statement, parameters, AttemptStart.STARTED)
        )
        return started

    async def next_due_at(self, channel: str | None = None) -> datetime | None:
        """When the next message (of one channel, if given) is due: a pending one, or a lease that ends.
        One statement: the dispatcher asks it each time a claim finds a channel with nothing more due."""
        of_channel = deliveries.c.channel == channel if channel is not None else true()
        pending = select(func.min(deliveries.c.due_at)).where(
            deliveries.c.status == DeliveryStatus.PENDING.value, of_channel)
        leased = select(func.min(deliveries.c.lease_until)).where(
            deliveries.c.status == DeliveryStatus.SENDING.value, of_channel)
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(pending.scalar_subquery(), leased.scalar_subquery()))).one()
        candidates = [moment for moment in row if moment is not None]
        return min(candidates) if candidates else None

    async def mark_sent(
        self, delivery: Delivery, provider_id: str, now: datetime, also: AlsoRecord | None = None
    ) -> bool:
        """Record that the message went out; also when it was cancelled while in flight (the truth)."""
        return await self._update_claimed(delivery, _SENT_OR_CANCELLED, also, {
            "status": DeliveryStatus.SENT.value, "provider_id": provider_id, "sent_at": now, "lease_until": None,
            "updated_at": now,
        })

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
        return await self._update_claimed(delivery, _STILL_CLAIMED, None, {
            "status": DeliveryStatus.PENDING.value, "lease_until": None, "updated_at": now, "due_at": due_at,
            "reason": reason, "error_code": code,
        }, refund_attempt=not charge_attempt)

    async def retry_after_unknown_outcome(
        self, delivery: Delivery, due_at: datetime, reason: str, code: str | None, now: datetime
    ) -> bool:
        """The provider call got no answer and may have sent the message: the row stays SENDING, its
        lease running out at `due_at`. It is then claimed as any message whose dispatcher stopped
        mid-call is, with `unknown_outcome_since` set, so the provider is asked before it is sent again."""
        return await self._update_claimed(delivery, _STILL_CLAIMED, None, {
            "lease_until": due_at, "updated_at": now, "reason": reason, "error_code": code,
        })

    async def _finish(
        self, delivery: Delivery, now: datetime, also: AlsoRecord | None, *, status: DeliveryStatus, **values: object
    ) -> bool:
        return await self._update_claimed(
            delivery, _STILL_CLAIMED, also, {"status": status.value, "lease_until": None, "updated_at": now, **values}
        )

    async def _update_claimed(
        self, delivery: Delivery, condition: str, also: AlsoRecord | None, values: dict[str, object], *,
        refund_attempt: bool = False,
    ) -> bool:
        """Change the row only under the claim this dispatcher holds: a dispatcher whose lease ran
        out and whose message was claimed again, or cancelled, changes nothing. `also` runs in the
        same transaction, only when the row changed."""
        statement = _claimed_update(condition, tuple(sorted(values)), refund_attempt)
        parameters = {**_claim_of(delivery), **{f"new_{name}": value for name, value in values.items()}}

        inserts, run = (also.inserts, also.run) if also is not None else ((), None)

        async def change(connection: AsyncConnection) -> bool:
            changed = (await connection.execute(statement, parameters)).rowcount == 1
            if changed:
                for row in inserts:
                    await connection.execute(row.statement, row.parameters)
                if run is not None:
                    await run(connection)
            return changed

        changed: bool = await self._writes.run(change, RowUpdate(statement, parameters, True, run, inserts))
        return changed

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
        """How many pending messages are due now, and the due time of the oldest of them (asked of each
        channel: each is a range of the due index)."""
        count, oldest = 0, None
        async with self.engine.connect() as connection:
            for channel in CHANNELS:
                due, first = (
                    await connection.execute(
                        select(func.count(), func.min(deliveries.c.due_at)).where(
                            deliveries.c.status == DeliveryStatus.PENDING.value, deliveries.c.channel == channel,
                            deliveries.c.due_at <= now,
                        )
                    )
                ).one()
                count += int(due)
                oldest = first if oldest is None or (first is not None and first < oldest) else oldest
        return count, oldest

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
