"""A patient sends the pre-visit screening form: answers recorded, the practitioner told, the record published.

The rules are in `domain/screening.py`; here one submission is applied in one transaction (the answers,
the practitioner's email in the delivery ledger, `ScreeningSubmitted` in the outbox). A later submission
replaces the row by a conditional update on its submission count, so two sent at once are applied one
after the other and neither is lost.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.aftercare.domain.screening import EarlierSubmission, Questions, ScreeningDecision, decide_submission
from services.aftercare.tables import screenings
from shared.clinic_config import ClinicConfig
from shared.clock import Clock
from shared.ledger.ledger import DeliveryLedger
from shared.links import PatientLinks
from shared.observability import get_logger
from shared.outbox.store import Outbox
from shared.screening_links import ScreeningClaims, read_screening_token
from shared.topics import AFTERCARE_RECORDS

log = get_logger(__name__)


@dataclass(frozen=True)
class Submitted:
    submission: int
    replaced_earlier: bool
    practitioner_notified: bool


class _Raced(Exception):
    """Another submission of the same appointment was recorded meanwhile: decide again."""


class ScreeningDesk:
    def __init__(self, *, engine: AsyncEngine, ledger: DeliveryLedger, outbox: Outbox, links: PatientLinks,
                 clinic: ClinicConfig, clock: Clock, on_change: Callable[[], None] = lambda: None) -> None:
        self.engine = engine
        self.ledger = ledger
        self.outbox = outbox
        self.links = links
        self.clinic = clinic
        self.clock = clock
        self.on_change = on_change

    def claims(self, token: str) -> ScreeningClaims:
        """The appointment a link is about; raises `InvalidLink` (invalid, or expired once the visit began)."""
        return read_screening_token(self.links, token, self.clock.now())

    def questions(self, claims: ScreeningClaims) -> Questions:
        return self.clinic.screening.questions_for(claims.appointment_type)

    async def earlier(self, appointment_id: str) -> EarlierSubmission | None:
        async with self.engine.connect() as connection:
            return await _earlier(connection, appointment_id)

    async def submit(self, claims: ScreeningClaims, answers: Mapping[str, str]) -> Submitted:
        for _ in range(5):
            now = self.clock.now()
            try:
                async with self.engine.begin() as connection:
                    decision = decide_submission(claims, answers, await _earlier(connection, claims.appointment_id),
                                                 self.clinic, now)
                    await _store(connection, claims, decision, now)
                    await self.ledger.record(connection, decision.staff_messages, now)
                    await self.outbox.add(connection, topic=AFTERCARE_RECORDS, key=claims.appointment_id,
                                          event=decision.event, now=now)
            except (IntegrityError, _Raced):
                continue
            log.info("screening_recorded", appointment_id=claims.appointment_id, submission=decision.submission,
                     flagged=len(decision.flagged), practitioner_notified=bool(decision.staff_messages))
            self.on_change()
            return Submitted(decision.submission, decision.replaces_earlier, bool(decision.staff_messages))
        raise RuntimeError("screening answers kept racing with other submissions of the same appointment")


async def _earlier(connection: AsyncConnection, appointment_id: str) -> EarlierSubmission | None:
    row = (await connection.execute(
        select(screenings).where(screenings.c.appointment_id == appointment_id)
    )).first()
    if row is None:
        return None
    return EarlierSubmission(row.submissions, dict(row.answers), tuple(row.flagged))


async def _store(connection: AsyncConnection, claims: ScreeningClaims, decision: ScreeningDecision,
                 now: datetime) -> None:
    values = {"answers": decision.answers, "flagged": list(decision.flagged), "submissions": decision.submission,
              "submitted_at": now, "locale": claims.locale, "starts_at": claims.starts_at,
              "appointment_type": claims.appointment_type, "practitioner": claims.practitioner}
    if decision.submission == 1:  # a first submission sent twice at once: the second insert fails and decides again
        await connection.execute(screenings.insert().values(appointment_id=claims.appointment_id,
                                                            first_submitted_at=now, **values))
        return
    result = await connection.execute(
        update(screenings)
        .where(screenings.c.appointment_id == claims.appointment_id,
               screenings.c.submissions == decision.submission - 1)
        .values(**values)
    )
    if result.rowcount != 1:
        raise _Raced()
