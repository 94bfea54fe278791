"""Escalations after a worrying answer: opened with the on-call alert, paged up the chain, acknowledged by staff.

The rules are in `domain/escalation.py`; here each step is applied in one transaction (the escalation's
new state by a conditional update, its history, the staff pages, the events to publish). The
conditional update is what keeps several instances from paging twice: only the transaction that still
finds the state it decided from moves it on.
"""
from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import Row, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.aftercare.domain.answers import AnswerDecision
from services.aftercare.domain.escalation import (
    ACKNOWLEDGE_VALIDITY,
    AckVia,
    Escalation,
    EscalationChange,
    EscalationStatus,
    acknowledge,
    acknowledged_reply,
    already_reply,
    decide_staff_text,
    free_reference,
    next_due_at,
    next_step,
    open_escalation,
    staff_role,
)
from services.aftercare.tables import escalation_steps, escalations
from shared.clinic_config import ClinicConfig
from shared.clock import Clock
from shared.events.aftercare import EscalationRaised, StaffRole
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.model import DeliveryIntent
from shared.links import InvalidLink, PatientLinks
from shared.observability import get_logger
from shared.outbox.store import Outbox
from shared.topics import AFTERCARE_ALERTS

log = get_logger(__name__)

UNACKNOWLEDGED = Gauge(
    "clinic_notify_escalations_unacknowledged",
    "Escalations nobody has acknowledged yet, by state (open: still paging; exhausted: everyone was paged)",
    ["status"],
)
OLDEST_UNACKNOWLEDGED = Gauge(
    "clinic_notify_escalation_oldest_unacknowledged_age_seconds",
    "Age of the oldest escalation nobody has acknowledged (0 when there is none)",
)
LINK_PURPOSE = "escalation-ack"


class EscalationDesk:
    def __init__(self, *, engine: AsyncEngine, ledger: DeliveryLedger, outbox: Outbox, links: PatientLinks,
                 clinic: ClinicConfig, clock: Clock, on_change: Callable[[], None] = lambda: None,
                 idle_poll: timedelta = timedelta(seconds=1)) -> None:
        self.engine = engine
        self.ledger = ledger
        self.outbox = outbox
        self.links = links
        self.clinic = clinic
        self.clock = clock
        self.on_change = on_change
        self.idle_poll = idle_poll
        self._wakeup = asyncio.Event()

    # --- raised with an answer (in the answer's transaction) ---

    async def opened(self, connection: AsyncConnection, decision: AnswerDecision,
                     now: datetime) -> tuple[DeliveryIntent, ...]:
        """The staff messages of an answer to record; an escalation's alert gets its reference and link."""
        raised = next((p.event for p in decision.publications if isinstance(p.event, EscalationRaised)), None)
        if raised is None:
            return decision.staff_messages
        taken = set((await connection.execute(
            select(escalations.c.reference).where(escalations.c.raised_at >= now - ACKNOWLEDGE_VALIDITY)
        )).scalars())
        reference = free_reference(taken, lambda: secrets.randbelow(10_000))
        change = open_escalation(raised, decision.staff_messages, reference,
                                 self.acknowledge_url(raised.reply_id, "on_call"), self.clinic, now)
        await connection.execute(escalations.insert().values(**_columns(change.escalation, self.clinic)))
        await self._record(connection, change, now)
        log.info("escalation_raised", escalation_id=change.escalation.id, reference=reference)
        self._wakeup.set()
        return change.staff_messages

    def acknowledge_url(self, escalation_id: str, role: StaffRole) -> str:
        token = self.links.encrypt_token(LINK_PURPOSE, {"escalation": escalation_id, "role": role})
        return f"{self.links.base_url.rstrip('/')}/escalation/{token}"

    # --- the watch: pages up the chain when nobody acknowledges ---

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            timeout = self.idle_poll.total_seconds()
            try:
                await self.advance_due()
                await self.report_unacknowledged()
                due = await self.next_due_at()
                if due is not None:
                    timeout = max(0.0, min(timeout, (due - self.clock.now()).total_seconds()))
            except Exception:  # the database is away: try again at the next round
                log.exception("escalation_watch_failed")
            self._wakeup.clear()
            waiters = [asyncio.ensure_future(self._wakeup.wait()), asyncio.ensure_future(stop.wait())]
            try:
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def report_unacknowledged(self) -> None:
        """What the alert rules watch: escalations nobody acknowledged, and how old the oldest is."""
        waiting = (EscalationStatus.OPEN, EscalationStatus.EXHAUSTED)
        async with self.engine.connect() as connection:
            rows = (await connection.execute(
                select(escalations.c.status, func.count(), func.min(escalations.c.raised_at))
                .where(escalations.c.status.in_(waiting)).group_by(escalations.c.status)
            )).all()
        counts = {status: 0 for status in waiting}
        oldest: datetime | None = None
        for status, count, raised_at in rows:
            counts[EscalationStatus(status)] = count
            oldest = raised_at if oldest is None or (raised_at is not None and raised_at < oldest) else oldest
        for status, count in counts.items():
            UNACKNOWLEDGED.labels(status.value).set(count)
        OLDEST_UNACKNOWLEDGED.set(0 if oldest is None else max(0.0, (self.clock.now() - oldest).total_seconds()))

    async def next_due_at(self) -> datetime | None:
        async with self.engine.connect() as connection:
            due: datetime | None = (await connection.execute(
                select(func.min(escalations.c.next_due_at)).where(escalations.c.status == EscalationStatus.OPEN)
            )).scalar()
        return due

    async def advance_due(self) -> int:
        """Pages (or ends the chain of) every escalation whose step is due; returns how many moved on."""
        now = self.clock.now()
        async with self.engine.connect() as connection:
            due = [_escalation(row) for row in await connection.execute(
                select(escalations).where(and_(escalations.c.status == EscalationStatus.OPEN,
                                               escalations.c.next_due_at <= now)).limit(100)
            )]
        moved = 0
        for escalation in due:
            change = next_step(escalation, self.clinic, now, partial(self.acknowledge_url, escalation.id))
            if change is None:
                continue
            async with self.engine.begin() as connection:
                if await self._record(connection, change, now):
                    moved += 1
                    log.info("escalation_stepped", escalation_id=escalation.id, reference=escalation.reference,
                             paged=change.escalation.paged, status=change.escalation.status.value)
        if moved:
            self.on_change()
        return moved

    # --- acknowledgements ---

    def is_staff_number(self, phone: str) -> bool:
        return self.clinic.aftercare.staff_role_of(phone) is not None

    async def sms_from_staff(self, phone: str, text: str) -> str:
        """A text from a staff phone: an acknowledgement, or a hint how to give one. Returns the reply."""
        role = self.clinic.aftercare.staff_role_of(phone)
        if role is None:
            raise ValueError("not a staff number")
        for _ in range(3):  # the watch may page at the same moment: decide again on the new state
            now = self.clock.now()
            async with self.engine.begin() as connection:
                recent = [_escalation(row) for row in await connection.execute(
                    select(escalations).where(escalations.c.raised_at >= now - ACKNOWLEDGE_VALIDITY)
                    .order_by(escalations.c.raised_at.desc())
                )]
                decision = decide_staff_text(text, staff_role(role), recent, self.clinic)
                if decision.escalation is None:
                    log.info("staff_text_answered", role=role, acknowledged=False)
                    return decision.reply
                change = acknowledge(decision.escalation, staff_role(role), "sms", self.clinic, now)
                if change is not None and await self._record(connection, change, now):
                    self._acknowledged(change, "sms")
                    return decision.reply
        return "Could not acknowledge just now: please use the link in the email."

    async def from_link(self, token: str) -> Escalation | None:
        claims = self._claims(token)
        if claims is None:
            return None
        async with self.engine.connect() as connection:
            return await _get(connection, claims[0])

    async def acknowledge_link(self, token: str) -> str | None:
        """The email link's button; returns what the page says, None for a link that is not valid."""
        claims = self._claims(token)
        if claims is None:
            return None
        escalation_id, role = claims
        for _ in range(3):
            now = self.clock.now()
            async with self.engine.begin() as connection:
                escalation = await _get(connection, escalation_id)
                if escalation is None:
                    return None
                change = acknowledge(escalation, role, "email_link", self.clinic, now)
                if change is None:
                    return already_reply(escalation, self.clinic)
                if await self._record(connection, change, now):
                    self._acknowledged(change, "email_link")
                    return acknowledged_reply(escalation)
        return "Could not acknowledge just now: please try again."

    def _claims(self, token: str) -> tuple[str, StaffRole] | None:
        try:
            claims = self.links.decrypt_token(LINK_PURPOSE, token, ACKNOWLEDGE_VALIDITY)
            return str(claims["escalation"]), staff_role(str(claims["role"]))
        except (InvalidLink, KeyError, ValueError):
            return None

    def _acknowledged(self, change: EscalationChange, via: AckVia) -> None:
        log.info("escalation_acknowledged", escalation_id=change.escalation.id,
                 reference=change.escalation.reference, role=change.escalation.acknowledged_by, via=via)
        self.on_change()

    # --- recording one step ---

    async def _record(self, connection: AsyncConnection, change: EscalationChange, now: datetime) -> bool:
        """Applies the step if the escalation is still as it was decided from; False when it moved on."""
        if change.expected_statuses:
            escalation = change.escalation
            result = await connection.execute(
                update(escalations)
                .where(and_(escalations.c.id == escalation.id, escalations.c.paged == change.expected_paged,
                            escalations.c.status.in_([s.value for s in change.expected_statuses])))
                .values(**{key: value for key, value in _columns(escalation, self.clinic).items()
                           if key in _MOVING})
            )
            if result.rowcount != 1:
                return False
        if change.steps:
            await connection.execute(escalation_steps.insert(), [asdict(step) for step in change.steps])
        if change.staff_messages:
            await self.ledger.record(connection, change.staff_messages, now)
        key = change.escalation.appointment_id or "unmatched"  # as EscalationRaised is keyed
        for event in change.events:
            await self.outbox.add(connection, topic=AFTERCARE_ALERTS, key=key, event=event, now=now)
        return True


_MOVING = ("paged", "last_paged_at", "next_due_at", "status", "acknowledged_by", "acknowledged_at")


def _columns(escalation: Escalation, clinic: ClinicConfig) -> dict[str, Any]:
    return {
        "id": escalation.id, "reference": escalation.reference, "appointment_id": escalation.appointment_id,
        "reasons": list(escalation.reasons), "context": escalation.context, "raised_at": escalation.raised_at,
        "paged": escalation.paged, "last_paged_at": escalation.last_paged_at,
        "next_due_at": next_due_at(escalation, clinic), "status": escalation.status.value,
        "acknowledged_by": escalation.acknowledged_by, "acknowledged_at": escalation.acknowledged_at,
    }


def _escalation(row: Row[Any]) -> Escalation:
    return Escalation(
        id=row.id, reference=row.reference, appointment_id=row.appointment_id, reasons=tuple(row.reasons),
        context=row.context, raised_at=row.raised_at, paged=row.paged, last_paged_at=row.last_paged_at,
        status=EscalationStatus(row.status),
        acknowledged_by=staff_role(row.acknowledged_by) if row.acknowledged_by else None,
        acknowledged_at=row.acknowledged_at,
    )


async def _get(connection: AsyncConnection, escalation_id: str) -> Escalation | None:
    row = (await connection.execute(select(escalations).where(escalations.c.id == escalation_id))).first()
    return _escalation(row) if row else None

