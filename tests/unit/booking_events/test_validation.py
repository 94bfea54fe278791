"""What the booking API refuses before anything reaches a patient: 422 naming the field, nothing stored."""
from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.events import parse_appointment_event
from tests.unit.booking_events.bodies import NOW, booking
from tests.unit.booking_events.conftest import outbox_values

UNSAFE_TEXT = {
    "NUL": "Maya\x00 Singh",
    "BEL": "Maya\x07 Singh",
    "escape": "Maya\x1b[31m Singh",
    "right-to-left override": "Maya \u202egnis",
    "right-to-left isolate": "Maya \u2067Singh\u2069",
    "CR/LF and a header": "Maya Singh\r\nBcc: everyone@example.com",
    "line feed": "Maya\nSingh",
    "line separator": "Maya\u2028Singh",
    "zero-width space": "Maya\u200bSingh",
    "only spaces": "     ",
    "only a no-break space": "\u00a0",
}


async def refused(response: httpx.Response, field: str) -> str:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_failed"
    assert [problem["field"] for problem in body["problems"]] == [field]
    message: str = body["problems"][0]["message"]
    return message


@pytest.mark.parametrize("name", UNSAFE_TEXT.values(), ids=UNSAFE_TEXT.keys())
async def test_a_patient_name_with_control_characters_or_nothing_in_it_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine, name: str
) -> None:
    response = await client.post("/v1/appointments", json=booking(patient__name=name))

    await refused(response, "patient.name")
    assert await outbox_values(engine) == []


@pytest.mark.parametrize("name", UNSAFE_TEXT.values(), ids=UNSAFE_TEXT.keys())
async def test_a_practitioner_name_follows_the_same_rule_at_booking_and_at_reschedule(
    client: httpx.AsyncClient, name: str
) -> None:
    booked = await client.post("/v1/appointments", json=booking(appointment__practitioner=name))
    await client.post("/v1/appointments", json=booking(appointment_id="apt_p"))
    moved = await client.post(
        "/v1/appointments/apt_p/reschedule",
        json={"starts_at": "2025-03-12T15:30:00-04:00", "practitioner": name},
    )

    await refused(booked, "appointment.practitioner")
    await refused(moved, "practitioner")


async def test_a_name_is_stored_composed_and_without_surrounding_spaces(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    decomposed = "  Zoe\u0301 Lefe\u0300vre-O\u2019Brien  "
    response = await client.post(
        "/v1/appointments", json=booking(patient__name=decomposed, appointment__practitioner=" Dr. Chen ")
    )

    assert response.status_code == 201, response.text
    [value] = await outbox_values(engine)
    event = parse_appointment_event(value)
    assert event.patient.name == "Zoé Lefèvre-O\u2019Brien"
    assert event.patient.first_name == "Zoé"
    assert event.appointment.practitioner == "Dr. Chen"


async def test_names_in_other_scripts_and_with_joiners_are_welcome(client: httpx.AsyncClient) -> None:
    for index, name in enumerate(["Nguyễn Thị Minh", "محمد علي", "김민준", "Ana\u00a0María", "क्\u200dष"]):
        response = await client.post(
            "/v1/appointments", json=booking(appointment_id=f"apt_n{index}", patient__name=name)
        )
        assert response.status_code == 201, (name, response.text)


async def test_a_location_the_clinic_does_not_have_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    booked = await client.post("/v1/appointments", json=booking(appointment__location_id="yonge-eglinton"))
    await client.post("/v1/appointments", json=booking(appointment_id="apt_l"))
    moved = await client.post(
        "/v1/appointments/apt_l/reschedule",
        json={"starts_at": "2025-03-12T15:30:00-04:00", "location_id": "scarborough"},
    )
    elsewhere = await client.post(
        "/v1/appointments/apt_l/reschedule",
        json={"starts_at": "2025-03-12T15:30:00-04:00", "location_id": "midtown"},
    )

    assert "downtown" in await refused(booked, "appointment.location_id")
    await refused(moved, "location_id")
    assert elsewhere.status_code == 200
    assert len(await outbox_values(engine)) == 2


@pytest.mark.parametrize(
    "phone", ["+1416CALLNOW", "(416) 555-0123", "416-555-0123", "+1 416 555 0123", "+1647555999", "+٤١٦٥٥٥٠١٢٣"]
)
async def test_a_phone_not_written_in_e164_is_refused_not_guessed(
    client: httpx.AsyncClient, engine: AsyncEngine, phone: str
) -> None:
    response = await client.post("/v1/appointments", json=booking(patient__phone=phone))

    assert "E.164" in await refused(response, "patient.phone")
    assert phone not in response.text
    assert await outbox_values(engine) == []


async def test_a_booking_in_the_past_is_refused_but_a_small_clock_skew_is_forgiven(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    an_hour_ago = (NOW - timedelta(hours=1)).isoformat()
    skewed = (NOW - timedelta(seconds=50)).isoformat()

    past = await client.post("/v1/appointments", json=booking(appointment__starts_at=an_hour_ago))
    almost_now = await client.post("/v1/appointments", json=booking(appointment__starts_at=skewed))

    message = await refused(past, "appointment.starts_at")
    assert "past" in message and "minute" in message
    assert almost_now.status_code == 201
    assert len(await outbox_values(engine)) == 1


async def test_a_reschedule_into_the_past_is_refused(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await client.post("/v1/appointments", json=booking(appointment_id="apt_t"))

    moved = await client.post(
        "/v1/appointments/apt_t/reschedule", json={"starts_at": (NOW - timedelta(days=1)).isoformat()}
    )

    await refused(moved, "starts_at")
    assert len(await outbox_values(engine)) == 1


@pytest.mark.parametrize("body", [b"{not json", b'{"patient": ', b"\xff\xfe"])
async def test_a_body_that_is_not_json_is_a_bad_request(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/v1/appointments", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"


async def test_an_id_with_spaces_in_the_path_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/appointments/has spaces")
    assert response.status_code == 422
    assert response.json()["problems"][0]["field"] == "path.appointment_id"
