"""The AsyncAPI document integrators publish and consume against: current, valid, and true to the wire."""
from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from cli import app
from cli.asyncapi_document import asyncapi_document
from shared.events import aftercare, appointment
from shared.events.aftercare import CheckInScheduled, ConsentChanged, EscalationRaised, NoReplyRecorded, ReplyRecorded
from shared.events.appointment import parse_appointment_event
from shared.outbox.store import event_headers
from shared.topics import ALL_TOPICS
from tests.support.events import booked, cancelled, completed, in_hours, no_show, rescheduled

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = REPO / "docs" / "asyncapi.yaml"
# The official AsyncAPI 3.0.0 JSON Schema (see tests/support/asyncapi/NOTICE).
ASYNCAPI_3_SCHEMA = json.loads((REPO / "tests" / "support" / "asyncapi" / "asyncapi-3.0.0.schema.json").read_text())
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def test_the_checked_in_document_matches_the_code() -> None:
    assert yaml.safe_load(PUBLISHED.read_text(encoding="utf-8")) == asyncapi_document(), (
        "regenerate with: clinic-notify asyncapi --out docs/asyncapi.yaml"
    )


def test_the_cli_writes_the_document(tmp_path: Path) -> None:
    out = tmp_path / "asyncapi.yaml"
    result = CliRunner().invoke(app, ["asyncapi", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(out.read_text(encoding="utf-8")) == asyncapi_document()


def test_the_document_is_valid_asyncapi_3() -> None:
    jsonschema.Draft7Validator(ASYNCAPI_3_SCHEMA).validate(asyncapi_document())


@pytest.mark.parametrize(
    "breakage",
    [
        lambda doc: doc["operations"]["notifierReceivesAppointmentEvents"].pop("action"),
        lambda doc: doc["channels"]["appointments"]["bindings"]["kafka"].update(partitions="six"),
        lambda doc: doc.update(asyncapi="2.6.0"),
    ],
)
def test_the_official_schema_refuses_a_broken_document(breakage: Any) -> None:
    document = copy.deepcopy(asyncapi_document())
    breakage(document)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(ASYNCAPI_3_SCHEMA).validate(document)


def test_every_reference_resolves() -> None:
    document = asyncapi_document()
    refs = list(_refs(document))
    assert refs
    for ref in refs:
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
            node = node[part]


def test_every_topic_the_services_create_is_a_channel_with_its_partitions() -> None:
    channels = asyncapi_document()["channels"].values()
    assert {c["address"]: c["bindings"]["kafka"]["partitions"] for c in channels} == {
        spec.name: spec.partitions for spec in ALL_TOPICS
    }


def test_every_event_model_is_a_message_of_a_channel() -> None:
    models = {
        model.__name__
        for module in (appointment, aftercare)
        for model in vars(module).values()
        if isinstance(model, type) and issubclass(model, BaseModel) and "event_type" in model.model_fields
    }
    documented = {
        name for channel in asyncapi_document()["channels"].values() for name in channel["messages"]
    }
    assert models <= documented, f"events on no channel: {sorted(models - documented)}"


def _published_events() -> list[tuple[str, BaseModel]]:
    first = booked("apt-1", in_hours(30, NOW))
    return [
        ("appointments", first),
        ("appointments", rescheduled(first, in_hours(50, NOW), 2)),
        ("appointments", cancelled(first, 2)),
        ("appointments", completed(first, 2)),
        ("appointments", no_show(first, 2)),
        ("consent", ConsentChanged(occurred_at=NOW, channel="sms", address="+14165550123", subscribed=False,
                                   source="sms_keyword")),
        ("aftercareRecords", CheckInScheduled(occurred_at=NOW, check_in_id="ci-1", appointment_id="apt-1", round=1,
                                              due_at=NOW, channels=["sms"])),
        ("aftercareRecords", ReplyRecorded(occurred_at=NOW, reply_id="r-1", check_in_id="ci-1", appointment_id="apt-1",
                                           via="sms", text="3", score=3, red_flags=[], action="none", reasons=[])),
        ("aftercareRecords", NoReplyRecorded(occurred_at=NOW, appointment_id="apt-1", check_ins=2)),
        ("aftercareAlerts", EscalationRaised(occurred_at=NOW, reply_id="r-2", check_in_id=None, appointment_id=None,
                                             score=9, previous_score=3, reasons=["score_high"],
                                             urgent_911_advice=False)),
    ]


@pytest.mark.parametrize(("channel", "event"), _published_events(), ids=lambda value: getattr(value, "event_type", ""))
def test_an_event_as_the_outbox_writes_it_matches_its_message(channel: str, event: BaseModel) -> None:
    document = asyncapi_document()
    name = type(event).__name__
    assert name in document["channels"][channel]["messages"]
    message = document["components"]["messages"][name]
    _validate(document, message["headers"], event_headers(event))
    _validate(document, message["payload"], event.model_dump(mode="json"))


def test_the_example_booking_is_an_event_the_consumers_accept() -> None:
    [example] = asyncapi_document()["components"]["messages"]["AppointmentBooked"]["examples"]
    event = parse_appointment_event(json.dumps(example["payload"]))
    assert example["headers"] == event_headers(event)


def test_an_appointment_event_without_its_type_is_refused_by_the_document_and_the_consumers() -> None:
    document = asyncapi_document()
    wire = booked("apt-1", in_hours(30, NOW)).model_dump(mode="json")
    del wire["event_type"]
    with pytest.raises(jsonschema.ValidationError, match="event_type"):
        _validate(document, document["components"]["messages"]["AppointmentBooked"]["payload"], wire)
    with pytest.raises(ValueError, match="event_type"):
        parse_appointment_event(json.dumps(wire))


def test_a_dead_letter_says_where_it_came_from_and_why() -> None:
    message = asyncapi_document()["components"]["messages"]["DeadLetter"]
    assert set(message["headers"]["required"]) == {
        "dlq-reason", "dlq-detail", "dlq-source-topic", "dlq-source-partition", "dlq-source-offset",
        "dlq-consumer-group", "dlq-failed-at",
    }


def _validate(document: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    root = {**schema, "components": document["components"]}
    jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker()).validate(instance)


def _refs(node: Any) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)
