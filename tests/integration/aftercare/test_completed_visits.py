"""An afternoon's completed visits read as one batch leave the check-ins, messages and outbox events that
reading them one at a time leaves, and a batch is written in a few statements however many it holds."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from services.aftercare.domain.reminder_replies import ReminderAnswer
from services.aftercare.tables import check_ins, upcoming_visits
from shared.events.appointment import AppointmentEvent
from shared.events.patient import ChannelConsent
from shared.ledger.tables import deliveries
from tests.conftest import create_postgres_database
from tests.integration.aftercare.conftest import VISIT_ENDS, Aftercare, aftercare_on
from tests.support.events import booked, cancelled, completed, patient, rescheduled
from tests.support.plans import anchors_planned


def an_afternoon() -> list[AppointmentEvent]:
    """Visits ending one after the other, patients reachable differently; one completion read twice, one
    visit completed again under a later sequence, bookings among them."""
    visits = [booked(f"apt-{n}", VISIT_ENDS - timedelta(minutes=30 * n), occurred_at=VISIT_ENDS - timedelta(days=5),
                     who=patient(patient_id=f"pt-{n}", email=f"patient{n}@example.com", phone=f"+1416555{n:04d}",
                                 consent=ChannelConsent(email=n % 3 != 1, sms=n % 3 != 2)))
              for n in range(6)]
    done = [completed(visit, sequence=2, completed_at=visit.appointment.ends_at) for visit in visits]
    return [
        done[0], visits[5], done[1], done[2], done[1],
        rescheduled(visits[4], VISIT_ENDS + timedelta(days=7), sequence=2),
        done[3], completed(visits[3], sequence=3, completed_at=VISIT_ENDS), done[5],
    ]


async def what_is_recorded(desk: Aftercare) -> dict[str, Any]:
    outbox = desk.outbox.table
    return {
        "check_ins": [tuple(row) for row in await desk.rows(select(check_ins).order_by(check_ins.c.id))],
        "messages": [tuple(row) for row in await desk.rows(
            select(*(column for column in deliveries.c if column.name != "id"))
            .order_by(deliveries.c.appointment_id, deliveries.c.step, deliveries.c.channel,
                      deliveries.c.appointment_version))],
        # Each event's own id is new each time: what was told, and in which order, is compared.
        "outbox": [(row.topic, row.key, {k: v for k, v in json.loads(row.value).items() if k != "event_id"})
                   for row in await desk.rows(select(outbox).order_by(outbox.c.id))],
    }


async def other_database(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path}/one-by-one.db"
    return await create_postgres_database(request.getfixturevalue("postgres"))


async def test_an_afternoon_read_as_one_batch_leaves_what_one_at_a_time_leaves(
    aftercare: Aftercare, database_url: str, tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    aftercare.clock.set(VISIT_ENDS + timedelta(minutes=3))
    await aftercare.completed_visits.handle_batch(an_afternoon())
    async with aftercare_on(await other_database(database_url, tmp_path, request)) as one_at_a_time:
        one_at_a_time.clock.set(VISIT_ENDS + timedelta(minutes=3))
        for one in an_afternoon():
            await one_at_a_time.completed_visits.handle_batch([one])
        expected = await what_is_recorded(one_at_a_time)

    recorded = await what_is_recorded(aftercare)
    assert recorded == expected
    assert len(recorded["outbox"]) == len(recorded["check_ins"]) > 0, "each check-in told once"
    assert {row[1] for row in recorded["check_ins"]} == {"apt-0", "apt-1", "apt-2", "apt-3", "apt-5"}


async def test_a_batch_is_written_in_a_few_statements_however_many_visits_it_holds(aftercare: Aftercare) -> None:
    visits = [booked(f"apt-{n}", VISIT_ENDS - timedelta(minutes=30), occurred_at=VISIT_ENDS - timedelta(days=5),
                     who=patient(patient_id=f"pt-{n}", email=f"patient{n}@example.com"))
              for n in range(200)]
    aftercare.clock.set(VISIT_ENDS + timedelta(minutes=3))
    statements: list[str] = []
    event.listen(aftercare.engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    await aftercare.completed_visits.handle_batch([completed(visit, sequence=2) for visit in visits])
    assert len(statements) <= 8, statements  # upcoming visits (2), check-ins, messages, outbox
    assert len(await aftercare.published("CheckInScheduled")) == len(await aftercare.rows(select(check_ins))) > 200


async def test_visits_that_end_together_have_their_check_ins_planned_once(
    aftercare: Aftercare, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The afternoon's visits end on the clinic's slots: read as one batch, each end time is planned once,
    and so is the advice (due as the batch is read) for each way of reaching the patients."""
    planned = anchors_planned(monkeypatch, "services.aftercare.domain.check_ins")
    ends = [VISIT_ENDS - timedelta(minutes=30 * slot) for slot in range(3)]
    visits = [booked(f"apt-{n}", ends[n % 3] - timedelta(minutes=30), occurred_at=VISIT_ENDS - timedelta(days=5),
                     who=patient(patient_id=f"pt-{n}", email=f"patient{n}@example.com", phone=f"+1416555{n:04d}"))
              for n in range(12)]
    read_at = VISIT_ENDS + timedelta(minutes=3)
    aftercare.clock.set(read_at)
    await aftercare.completed_visits.handle_batch([completed(visit, sequence=2) for visit in visits])

    assert sorted(planned) == sorted([*ends, read_at])
    assert len(await aftercare.rows(select(check_ins))) == 12 * len(
        {row.round for row in await aftercare.rows(select(check_ins))}), "every visit has all its check-ins"


async def test_an_answer_to_the_reminder_stays_while_the_visit_keeps_its_time_and_a_replay_changes_nothing(
    aftercare: Aftercare,
) -> None:
    visit = booked("apt-a", VISIT_ENDS + timedelta(days=2), occurred_at=VISIT_ENDS - timedelta(days=5))
    await aftercare.completed_visits.handle_batch([visit])
    async with aftercare.engine.begin() as connection:
        await aftercare.parts.completed_visits.upcoming.record_answer(connection, "apt-a", ReminderAnswer.CONFIRMED,
                                                                     VISIT_ENDS)
    [answered] = await aftercare.rows(select(upcoming_visits))

    aftercare.clock.set(VISIT_ENDS + timedelta(hours=1))
    await aftercare.completed_visits.handle_batch([visit])  # read again
    assert await aftercare.rows(select(upcoming_visits)) == [answered], "a replay changes nothing"

    await aftercare.completed_visits.handle_batch([cancelled(visit, sequence=2)])
    [cancelled_row] = await aftercare.rows(select(upcoming_visits))
    assert (cancelled_row.sequence, cancelled_row.status, cancelled_row.answer) == (2, "cancelled", "confirmed")

    await aftercare.completed_visits.handle_batch([rescheduled(visit, VISIT_ENDS + timedelta(days=3), sequence=3)])
    [moved] = await aftercare.rows(select(upcoming_visits))
    assert (moved.sequence, moved.answer, moved.answered_at) == (3, None, None), "the answer was to the old time"
