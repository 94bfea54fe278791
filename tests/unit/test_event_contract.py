"""The event contract integrators rely on: its published JSON Schema and its validation rules."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cli.contract import event_contract
from shared.events.appointment import parse_appointment_event
from tests.support.events import booked, in_hours

PUBLISHED_SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "appointment-events-v1.schema.json"


def test_the_published_json_schema_matches_the_code() -> None:
    assert json.loads(PUBLISHED_SCHEMA.read_text()) == event_contract(), (
        "regenerate with: clinic-notify schema --out docs/appointment-events-v1.schema.json"
    )


def test_an_event_survives_its_wire_form() -> None:
    event = booked("apt-1", in_hours(30))
    assert parse_appointment_event(event.model_dump_json()) == event


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sequence": 0}, "sequence"),
        ({"event_type": "AppointmentMoved"}, "event_type"),
        ({"schema_version": 2}, "schema_version"),
        ({"appointment_id": "has spaces"}, "appointment_id"),
    ],
)
def test_an_invalid_event_is_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    wire = json.loads(booked("apt-1", in_hours(30)).model_dump_json()) | change
    with pytest.raises(ValidationError) as refusal:
        parse_appointment_event(json.dumps(wire))
    assert field in str(refusal.value)


def test_a_phone_number_is_stored_in_e164_and_a_naive_time_is_refused() -> None:
    wire = json.loads(booked("apt-1", in_hours(30)).model_dump_json())
    wire["patient"]["phone"] = "(416) 555-0123"
    assert parse_appointment_event(json.dumps(wire)).patient.phone == "+14165550123"
    wire["appointment"]["starts_at"] = "2026-12-01T10:00:00"
    with pytest.raises(ValidationError, match="timezone"):
        parse_appointment_event(json.dumps(wire))
