"""The booking API: what a booking system sends, what it gets back, and what goes in the outbox."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking_events.bootstrap import BookingParts
from shared.events import AppointmentBooked, AppointmentRescheduled, parse_appointment_event
from shared.outbox.kafka_publisher import RecordingPublisher
from tests.unit.booking_events.bodies import NOW, PHONE, booking
from tests.unit.booking_events.conftest import outbox_values


async def test_a_booking_is_accepted_and_its_event_waits_in_the_outbox(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await client.post("/v1/appointments", json=booking())

    assert response.status_code == 201
    accepted = response.json()
    assert accepted["appointment_id"].startswith("apt_")
    assert accepted["sequence"] == 1
    assert accepted["status"] == "booked"
    [value] = await outbox_values(engine)
    event = parse_appointment_event(value)
    assert isinstance(event, AppointmentBooked)
    assert str(event.event_id) == accepted["event_id"]
    assert event.appointment_id == accepted["appointment_id"]
    assert event.patient.phone == PHONE
    assert event.location_id == "downtown"
    assert event.occurred_at == NOW


async def test_a_retried_booking_with_the_same_key_gets_the_first_answer_and_no_second_event(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = {"Idempotency-Key": "booking-42"}
    first = await client.post("/v1/appointments", json=booking(), headers=headers)
    retry = await client.post("/v1/appointments", json=booking(), headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert len(await outbox_values(engine)) == 1


async def test_concurrent_retries_with_the_same_key_make_one_event(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = {"Idempotency-Key": "booking-race"}
    responses = await asyncio.gather(
        *(client.post("/v1/appointments", json=booking(), headers=headers) for _ in range(5))
    )

    assert {response.status_code for response in responses} == {201}
    assert len({response.json()["event_id"] for response in responses}) == 1
    assert len(await outbox_values(engine)) == 1


async def test_reusing_a_key_for_a_different_booking_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = {"Idempotency-Key": "booking-43"}
    await client.post("/v1/appointments", json=booking(), headers=headers)
    other = await client.post(
        "/v1/appointments", json=booking(appointment__duration_minutes=60), headers=headers
    )

    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"
    assert len(await outbox_values(engine)) == 1


async def test_two_integrators_may_use_the_same_idempotency_key(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "1"}
    mine = await client.post("/v1/appointments", json=booking(), headers=headers)
    theirs = await client.post(
        "/v1/appointments",
        json=booking(appointment__duration_minutes=60),
        headers={**headers, "X-API-Key": "other-key"},
    )

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["appointment_id"] != theirs.json()["appointment_id"]


@pytest.mark.parametrize("api_key", [None, "wrong-key", ""])
async def test_without_a_valid_api_key_nothing_is_booked(
    client: httpx.AsyncClient, engine: AsyncEngine, api_key: str | None
) -> None:
    headers = {} if api_key is None else {"X-API-Key": api_key}
    client.headers.pop("X-API-Key")
    response = await client.post("/v1/appointments", json=booking(), headers=headers)

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert await outbox_values(engine) == []


async def test_an_unauthenticated_caller_learns_nothing_about_the_body(
    client: httpx.AsyncClient,
) -> None:
    client.headers.pop("X-API-Key")
    response = await client.post("/v1/appointments", json={"nonsense": True})

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("change", "field", "hint"),
    [
        ({"patient__phone": "416-555-01"}, "patient.phone", "E.164"),
        ({"patient__email": "maya-at-example.com"}, "patient.email", "email"),
        ({"appointment__starts_at": "2025-03-10T10:00:00"}, "appointment.starts_at", "timezone"),
        ({"appointment__type": "reiki"}, "appointment.type", "dry_needling"),
    ],
)
async def test_a_bad_booking_is_refused_naming_the_field_without_echoing_it(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    field: str,
    hint: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await client.post("/v1/appointments", json=booking(**change))

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_failed"
    [problem] = body["problems"]
    assert problem["field"] == field
    assert hint in problem["message"]
    sent_value = next(iter(change.values()))
    logged = caplog.text + "".join(capsys.readouterr())
    assert sent_value not in response.text
    assert sent_value not in logged
    assert await outbox_values(engine) == []


async def test_a_reschedule_is_the_second_event_and_remembers_the_old_time(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    booked = (await client.post("/v1/appointments", json=booking(appointment_id="apt_77"))).json()

    response = await client.post(
        "/v1/appointments/apt_77/reschedule", json={"starts_at": "2025-03-12T15:30:00-04:00"}
    )

    assert response.status_code == 200
    assert response.json()["sequence"] == 2
    assert response.json()["status"] == "rescheduled"
    _, value = await outbox_values(engine)
    event = parse_appointment_event(value)
    assert isinstance(event, AppointmentRescheduled)
    assert event.sequence == 2
    assert event.previous_starts_at == datetime.fromisoformat("2025-03-10T10:00:00-04:00")
    assert event.appointment.starts_at == datetime.fromisoformat("2025-03-12T15:30:00-04:00")
    assert event.appointment.practitioner == "Dr. Chen"
    assert event.patient.phone == PHONE
    current = (await client.get("/v1/appointments/apt_77")).json()
    assert current["sequence"] == 2
    assert current["appointment"]["starts_at"] == "2025-03-12T15:30:00-04:00"
    assert booked["appointment_id"] == "apt_77"


async def test_a_cancelled_appointment_cannot_be_rescheduled(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await client.post("/v1/appointments", json=booking(appointment_id="apt_9"))
    cancelled = await client.post("/v1/appointments/apt_9/cancel", json={"cancelled_by": "patient"})
    moved = await client.post(
        "/v1/appointments/apt_9/reschedule", json={"starts_at": "2025-03-12T15:30:00-04:00"}
    )

    assert cancelled.status_code == 200
    assert cancelled.json() | {"event_id": None} == {
        "appointment_id": "apt_9", "sequence": 2, "status": "cancelled", "event_id": None
    }
    assert moved.status_code == 409
    assert moved.json()["error"] == "transition_not_allowed"
    assert len(await outbox_values(engine)) == 2


async def test_completion_and_no_show_close_the_appointment(client: httpx.AsyncClient) -> None:
    await client.post("/v1/appointments", json=booking(appointment_id="apt_c"))
    await client.post("/v1/appointments", json=booking(appointment_id="apt_n"))

    completed = await client.post(
        "/v1/appointments/apt_c/complete", json={"needled_near_chest": True}
    )
    no_show = await client.post("/v1/appointments/apt_n/no-show")
    again = await client.post("/v1/appointments/apt_c/no-show")

    assert (completed.status_code, completed.json()["status"]) == (200, "completed")
    assert (no_show.status_code, no_show.json()["status"]) == (200, "no_show")
    assert again.status_code == 409


async def test_booking_the_same_appointment_id_twice_is_a_conflict(client: httpx.AsyncClient) -> None:
    first = await client.post("/v1/appointments", json=booking(appointment_id="apt_dup"))
    second = await client.post("/v1/appointments", json=booking(appointment_id="apt_dup"))

    assert (first.status_code, second.status_code) == (201, 409)
    assert second.json()["error"] == "appointment_already_booked"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/appointments/apt_missing/reschedule"),
        ("POST", "/v1/appointments/apt_missing/cancel"),
        ("POST", "/v1/appointments/apt_missing/no-show"),
        ("GET", "/v1/appointments/apt_missing"),
    ],
)
async def test_an_unknown_appointment_is_not_found(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"starts_at": "2025-03-12T15:30:00-04:00"} if path.endswith("reschedule") else None
    response = await client.request(method, path, json=body)

    assert response.status_code == 404
    assert response.json()["error"] == "appointment_not_found"


async def test_metrics_count_requests_and_show_the_outbox_backlog_on_their_own_port(
    client: httpx.AsyncClient, parts: BookingParts
) -> None:
    await client.post("/v1/appointments", json=booking())

    transport = httpx.ASGITransport(app=parts.metrics_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://booking:9100") as scraper:
        response = await scraper.get("/metrics")
    metrics = response.text

    assert 'booking_requests_accepted_total{kind="book"} 1.0' in metrics
    assert "booking_outbox_unpublished 1.0" in metrics
    assert "booking_write_batch_commands_count 1.0" in metrics
    assert response.headers["content-type"].startswith("text/plain")
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_the_relay_publishes_one_event_per_appointment_per_round_and_keeps_failures(
    client: httpx.AsyncClient, parts: BookingParts, publisher: RecordingPublisher
) -> None:
    await client.post("/v1/appointments", json=booking(appointment_id="apt_r"))
    await client.post("/v1/appointments/apt_r/cancel")
    publisher.failing = ConnectionError("broker down")
    relay = parts.relay

    with pytest.raises(ConnectionError):
        await relay.publish_pending()
    publisher.failing = None
    rounds = [await relay.publish_pending() for _ in range(3)]

    assert rounds == [1, 1, 0]
    assert [parse_appointment_event(m.value).sequence for m in publisher.published] == [1, 2]


async def test_a_burst_of_bookings_on_sqlite_is_written_one_after_another_not_left_waiting_on_its_lock(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """SQLite has one write lock. Even with no wait for it allowed at all (busy_timeout 0), 15 bookings
    at once all go in: they queue in the service and write in turn, rather than each finding the lock
    taken by another request's transaction (and, with the usual timeout, sleeping in SQLite's busy
    handler, which is what made a burst slow)."""

    @event.listens_for(engine.sync_engine, "connect")
    def no_wait_for_the_lock(connection: Any, _record: object) -> None:  # a DB-API connection
        cursor = connection.cursor()
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()

    await engine.dispose()  # the next connections are made with the setting above
    answers = await asyncio.gather(*(
        client.post("/v1/appointments", json=booking(appointment_id=f"apt-burst-{n}"),
                    headers={"Idempotency-Key": f"burst-{n}"})
        for n in range(15)))  # within the API key's burst
    assert [answer.status_code for answer in answers] == [201] * 15
    assert len(await outbox_values(engine)) == 15


async def test_a_burst_of_bookings_is_written_in_a_few_transactions_not_one_per_request(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Bookings that arrive while others are being written wait together and go in one transaction:
    a burst then costs a handful of statements per transaction instead of a transaction per request."""
    commits = []
    event.listen(engine.sync_engine, "commit", lambda _connection: commits.append(1))

    answers = await asyncio.gather(*(
        client.post("/v1/appointments", json=booking(appointment_id=f"apt-together-{n}")) for n in range(15)))

    assert [answer.status_code for answer in answers] == [201] * 15
    assert len(await outbox_values(engine)) == 15
    assert len(commits) <= 3


async def test_a_new_booking_costs_three_statements_in_its_transaction(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Locking and reading the appointment is one statement, and a new appointment is not looked up
    among the treatment plans' sessions (a session is booked with its plan, never alone). On SQLite the
    transaction takes the write lock as it begins."""
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda _c, _cursor, statement, *_: statements.append(" ".join(statement.split()[:3])))

    answer = await client.post("/v1/appointments", json=booking(appointment_id="apt-alone"))

    assert answer.status_code == 201
    assert statements == ["BEGIN IMMEDIATE", "UPDATE booking_appointments SET", "INSERT INTO booking_appointments",
                          "INSERT INTO booking_outbox"]


async def test_a_request_never_asks_opentelemetry_for_its_providers(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service reports through Prometheus and its logs; nothing is spent per request on a telemetry
    stack that is not configured."""
    from opentelemetry import _logs, metrics, trace

    asked: list[str] = []

    def counted(getter: str, original: Callable[[], object]) -> Callable[[], object]:
        def provider() -> object:
            asked.append(getter)
            return original()
        return provider

    for module, getter in ((trace, "get_tracer_provider"), (metrics, "get_meter_provider"),
                           (_logs, "get_logger_provider")):
        monkeypatch.setattr(module, getter, counted(getter, getattr(module, getter)))

    response = await client.post("/v1/appointments", json=booking())

    assert response.status_code == 201
    assert asked == []
