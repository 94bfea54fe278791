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


def test_a_naive_time_is_refused() -> None:
    wire = json.loads(booked("apt-1", in_hours(30)).model_dump_json())
    wire["appointment"]["starts_at"] = "2026-12-01T10:00:00"
    with pytest.raises(ValidationError, match="timezone"):
        parse_appointment_event(json.dumps(wire))


@pytest.mark.parametrize("phone", ["(416) 555-0123", "+1416CALLNOW", "4165550123", "+1 416 555 0123"])
def test_a_phone_not_in_e164_is_refused_not_rewritten(phone: str) -> None:
    wire = json.loads(booked("apt-1", in_hours(30)).model_dump_json())
    wire["patient"]["phone"] = phone
    with pytest.raises(ValidationError, match=r"E\.164") as refusal:
        parse_appointment_event(json.dumps(wire))
    assert "patient.phone" in str(refusal.value)


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("patient", "name", "Alex\x00"),
        ("patient", "name", "\u202eAlex"),
        ("patient", "name", "Alex\r\nBcc: everyone@example.com"),
        ("patient", "name", "   "),
        ("appointment", "practitioner", "Sam\x07 Lee"),
        ("appointment", "practitioner", "Sam \u2066Lee"),
    ],
)
def test_a_consumer_refuses_names_with_control_characters(section: str, field: str, value: str) -> None:
    wire = json.loads(booked("apt-1", in_hours(30)).model_dump_json())
    wire[section][field] = value
    with pytest.raises(ValidationError) as refusal:
        parse_appointment_event(json.dumps(wire))
    assert f"{section}.{field}" in str(refusal.value)


def test_a_sequence_beyond_the_database_column_is_refused() -> None:
    wire = json.loads(booked("apt-1", in_hours(30)).model_dump_json())
    assert parse_appointment_event(json.dumps(wire | {"sequence": 2**31 - 1})).sequence == 2**31 - 1
    with pytest.raises(ValidationError, match="sequence"):
        parse_appointment_event(json.dumps(wire | {"sequence": 2**31}))


def test_the_published_schema_carries_the_patterns() -> None:
    patient = event_contract()["$defs"]["PatientContact"]["properties"]
    assert patient["phone"]["anyOf"][0]["pattern"] == r"^\+[1-9][0-9]{6,14}$"
    assert "pattern" in patient["name"]
