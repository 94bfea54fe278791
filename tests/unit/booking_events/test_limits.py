"""The booking API's limits: who may send, how much, what kind, how often; refusals come before reading."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from services.booking_events import bootstrap
from services.booking_events.bootstrap import BookingParts
from services.booking_events.http_gate import RequestGate
from services.booking_events.settings import BookingSettings
from services.booking_events.tables import SCHEMA as BOOKING_SCHEMA
from shared.clock import FixedClock
from shared.database import create_tables
from shared.outbox.kafka_publisher import RecordingPublisher
from tests.unit.booking_events.bodies import API_KEY, NOW, booking

LIMIT = 64 * 1024
CHUNK = 16 * 1024


@dataclass
class Sender:
    """Plays the client side of one ASGI request and counts how much of the body the app asked for."""

    chunks: list[bytes]
    endless: bool = False
    read: int = 0
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    async def receive(self) -> dict[str, Any]:
        if self.endless or self.chunks:
            chunk = self.chunks.pop(0) if self.chunks else b"x" * CHUNK
            self.read += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": self.endless or bool(self.chunks)}
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


async def post_raw(app: FastAPI, sender: Sender, headers: dict[str, str], path: str = "/v1/appointments") -> Sender:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "server": ("booking", 80), "client": ("127.0.0.1", 5000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    await app(scope, sender.receive, sender.send)
    return sender


async def test_a_body_announced_too_large_is_refused_without_reading_it(parts: BookingParts) -> None:
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json", "Content-Length": str(10 * LIMIT)}

    sender = await post_raw(parts.app, Sender([b"x" * CHUNK] * 40), headers)

    assert sender.status == 413
    assert json.loads(sender.body)["error"] == "payload_too_large"
    assert sender.read == 0


async def test_a_streamed_body_is_cut_off_at_the_limit(parts: BookingParts) -> None:
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json", "Transfer-Encoding": "chunked"}

    sender = await post_raw(parts.app, Sender([], endless=True), headers)

    assert sender.status == 413
    assert sender.read <= LIMIT + CHUNK


async def test_a_body_that_lies_about_its_length_is_cut_off_too(parts: BookingParts) -> None:
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json", "Content-Length": "100"}

    sender = await post_raw(parts.app, Sender([], endless=True), headers)

    assert sender.status == 413
    assert sender.read <= LIMIT + CHUNK


@pytest.mark.parametrize("api_key", [None, "wrong-key"])
async def test_an_unknown_caller_is_refused_before_its_body_is_read(parts: BookingParts, api_key: str | None) -> None:
    headers = {"Content-Type": "application/json"} | ({"X-API-Key": api_key} if api_key else {})

    sender = await post_raw(parts.app, Sender([], endless=True), headers)

    assert sender.status == 401
    assert sender.read == 0


async def test_a_request_that_did_not_come_through_the_gate_is_refused(parts: BookingParts) -> None:
    app = parts.app
    app.user_middleware = [entry for entry in app.user_middleware if entry.cls is not cast(Any, RequestGate)]
    body = json.dumps(booking()).encode()
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json", "Content-Length": str(len(body))}

    sender = await post_raw(app, Sender([body]), headers)

    assert sender.status == 401
    assert json.loads(sender.body)["error"] == "unauthorized"


async def test_a_booking_of_ordinary_size_still_goes_through(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/appointments", json=booking())
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("text/plain", b"{}"),
        ("application/x-www-form-urlencoded", b"patient=maya"),
        (
            "multipart/form-data; boundary=xyz",
            b"--xyz\r\nContent-Disposition: form-data; name=a\r\n\r\nb\r\n--xyz--\r\n",
        ),
        ("application/xml", b"<booking/>"),
    ],
)
async def test_anything_but_json_is_an_unsupported_media_type(
    client: httpx.AsyncClient, content_type: str, content: bytes
) -> None:
    response = await client.post("/v1/appointments", content=content, headers={"Content-Type": content_type})

    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


async def test_json_with_a_charset_and_a_bodiless_change_are_fine(client: httpx.AsyncClient) -> None:
    booked = await client.post(
        "/v1/appointments",
        content=json.dumps(booking(appointment_id="apt_cs")).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    no_show = await client.post("/v1/appointments/apt_cs/no-show")

    assert (booked.status_code, no_show.status_code) == (201, 200)


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[BookingParts]:
    settings = BookingSettings(
        api_keys=[API_KEY, "other-key"],
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'booking.db'}",
        rate_limit_per_second=0.5,
        rate_limit_burst=3,
    )
    parts = bootstrap.build(settings, clock=FixedClock(NOW), publisher=RecordingPublisher())
    await create_tables(parts.engine, BOOKING_SCHEMA)
    yield parts
    await parts.engine.dispose()


async def test_a_client_past_its_rate_is_told_when_to_come_back_and_others_are_not_slowed(
    limited: BookingParts,
) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=limited.app), base_url="http://booking") as client:
        mine = [
            await client.get("/v1/appointments/apt_x", headers={"X-API-Key": API_KEY}) for _ in range(4)
        ]
        theirs = await client.get("/v1/appointments/apt_x", headers={"X-API-Key": "other-key"})

    assert [response.status_code for response in mine] == [404, 404, 404, 429]
    assert mine[-1].json()["error"] == "rate_limited"
    assert 1 <= int(mine[-1].headers["Retry-After"]) <= 2
    assert theirs.status_code == 404


async def test_metrics_and_the_api_description_are_not_public_on_the_api_port(
    parts: BookingParts, client: httpx.AsyncClient
) -> None:
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=parts.app), base_url="http://booking")
    async with anonymous:
        metrics = await anonymous.get("/metrics")
        schema = await anonymous.get("/openapi.json")
        docs = await anonymous.get("/docs")

    assert metrics.status_code == 404
    assert (schema.status_code, docs.status_code) == (401, 401)
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get("/docs")).status_code == 200


async def test_the_api_description_can_be_switched_off(tmp_path: Path) -> None:
    settings = BookingSettings(
        api_keys=[API_KEY], database_url=f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", api_docs=False
    )
    parts = bootstrap.build(settings, clock=FixedClock(NOW), publisher=RecordingPublisher())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=parts.app), base_url="http://booking", headers={"X-API-Key": API_KEY}
    ) as client:
        assert (await client.get("/openapi.json")).status_code == 404
        assert (await client.get("/docs")).status_code == 404
    await parts.engine.dispose()


async def test_the_api_description_tells_the_truth_about_refusals_and_patterns(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    book = schema["paths"]["/v1/appointments"]["post"]
    view = schema["paths"]["/v1/appointments/{appointment_id}"]["get"]
    components = schema["components"]["schemas"]

    assert {"201", "400", "401", "409", "413", "415", "422", "429"} <= set(book["responses"])
    assert {"200", "401", "404", "422", "429"} <= set(view["responses"])
    assert "400" not in view["responses"]
    [id_parameter] = [p for p in view["parameters"] if p["name"] == "appointment_id"]
    assert id_parameter["schema"]["pattern"] == "^[A-Za-z0-9_.:-]+$"
    phone = components["PatientContact"]["properties"]["phone"]["anyOf"][0]
    assert phone["pattern"] == r"^\+[1-9][0-9]{6,14}$"
    assert "pattern" in components["PatientContact"]["properties"]["name"]
    assert "/metrics" not in schema["paths"]
