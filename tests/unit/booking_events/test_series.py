"""A treatment plan booked at once: every session and its event, or nothing; each event carries the plan."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.events import AppointmentBooked, AppointmentCancelled, AppointmentRescheduled, parse_appointment_event
from tests.unit.booking_events.bodies import booking
from tests.unit.booking_events.conftest import outbox_values

TORONTO = ZoneInfo("America/Toronto")
FIRST = datetime(2025, 3, 4, 17, 30, tzinfo=TORONTO)  # a Tuesday; clocks change on March 9


def plan(**changes: Any) -> dict[str, Any]:
    """Six weekly dry-needling sessions for one patient."""
    single = booking()
    template = {key: value for key, value in single["appointment"].items() if key != "starts_at"}
    body: dict[str, Any] = {
        "series_id": "plan-1042",
        "patient": single["patient"],
        "appointment": template,
        "starts_at": [(FIRST + timedelta(weeks=n)).isoformat() for n in range(6)],
    }
    body.update(changes)
    return body


async def events(engine: AsyncEngine) -> list[Any]:
    return [parse_appointment_event(value) for value in await outbox_values(engine)]


async def test_a_plan_of_six_sessions_stores_six_bookings_each_carrying_the_whole_plan(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await client.post("/v1/series", json=plan())

    assert response.status_code == 201
    accepted = response.json()
    assert accepted["series_id"] == "plan-1042"
    assert [s["appointment_id"] for s in accepted["sessions"]] == [f"plan-1042.{n}" for n in range(1, 7)]
    booked = await events(engine)
    assert [type(event) for event in booked] == [AppointmentBooked] * 6
    for number, event in enumerate(booked, start=1):
        assert event.series is not None
        assert event.series.series_id == "plan-1042"
        assert (event.series.session_number, event.series.session_count) == (number, 6)
        assert [s.appointment_id for s in event.series.sessions] == [e.appointment_id for e in booked]
        assert event.appointment.starts_at == FIRST + timedelta(weeks=number - 1)
    view = await client.get("/v1/appointments/plan-1042.3")
    assert view.json()["status"] == "booked"


async def test_a_start_count_and_interval_keep_the_local_time_across_the_clock_change(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    body = plan(starts_at=None, repeat={"first_starts_at": FIRST.isoformat(), "count": 3})
    response = await client.post("/v1/series", json=body)

    assert response.status_code == 201
    starts = [event.appointment.starts_at.astimezone(TORONTO) for event in await events(engine)]
    assert [(s.hour, s.minute) for s in starts] == [(17, 30)] * 3
    assert [s.date().isoformat() for s in starts] == ["2025-03-04", "2025-03-11", "2025-03-18"]


async def test_one_past_start_refuses_the_whole_plan_and_names_it(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    starts = plan()["starts_at"]
    starts[2] = "2025-03-01T10:00:00-05:00"
    response = await client.post("/v1/series", json=plan(starts_at=starts))

    assert response.status_code == 422
    assert [p["field"] for p in response.json()["problems"]] == ["starts_at[2]"]
    assert await outbox_values(engine) == []
    assert (await client.get("/v1/appointments/plan-1042.1")).status_code == 404


async def test_a_plan_over_52_sessions_or_with_both_ways_of_giving_starts_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    too_long = plan(starts_at=None, repeat={"first_starts_at": FIRST.isoformat(), "count": 53})
    both = plan(repeat={"first_starts_at": FIRST.isoformat(), "count": 2})
    unknown_place = plan(appointment={**plan()["appointment"], "location_id": "moon"})

    refused = [await client.post("/v1/series", json=body) for body in (too_long, both, unknown_place)]

    assert [r.status_code for r in refused] == [422, 422, 422]
    assert "repeat.count" in {p["field"] for p in refused[0].json()["problems"]}
    assert {p["field"] for p in refused[2].json()["problems"]} == {"appointment.location_id"}
    assert await outbox_values(engine) == []


async def test_a_retried_plan_with_the_same_key_books_nothing_more(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = {"Idempotency-Key": "plan-1042-attempt"}
    body = plan(series_id=None)
    first = await client.post("/v1/series", json=body, headers=headers)
    retry = await client.post("/v1/series", json=body, headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert len(await outbox_values(engine)) == 6


async def test_a_plan_id_already_used_is_a_conflict_and_adds_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await client.post("/v1/series", json=plan())
    again = await client.post("/v1/series", json=plan(starts_at=plan()["starts_at"][:2]))

    assert again.status_code == 409
    assert len(await outbox_values(engine)) == 6


async def test_cancelling_or_moving_one_session_tells_the_updated_plan(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await client.post("/v1/series", json=plan())
    moved_to = FIRST + timedelta(weeks=1, days=1)
    await client.post("/v1/appointments/plan-1042.2/reschedule", json={"starts_at": moved_to.isoformat()})
    await client.post("/v1/appointments/plan-1042.3/cancel", json={"cancelled_by": "patient"})

    *_, moved, cancelled = await events(engine)
    assert isinstance(moved, AppointmentRescheduled) and isinstance(cancelled, AppointmentCancelled)
    assert moved.series is not None and cancelled.series is not None
    assert moved.series.session_number == 2 and cancelled.series.session_number == 3
    assert moved.series.sessions[1].starts_at == moved_to
    assert [s.cancelled for s in cancelled.series.sessions] == [False, False, True, False, False, False]
    assert cancelled.series.sessions[1].starts_at == moved_to


async def test_an_appointment_outside_a_plan_carries_no_series_on_the_wire(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await client.post("/v1/appointments", json=booking())

    [value] = await outbox_values(engine)
    assert '"series"' not in value
