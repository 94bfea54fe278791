"""`clinic-notify schema`: the appointment event contract v1 as JSON Schema, for integrators."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.output import stderr
from shared.events.appointment import appointment_event_json_schema

SCHEMA_ID = "https://json-schema.org/draft/2020-12/schema"


def register(app: typer.Typer) -> None:
    app.command("schema")(schema)


def event_contract() -> dict[str, Any]:
    return {
        "$schema": SCHEMA_ID,
        "title": "Clinic appointment event (contract v1, topic clinic.appointments.v1)",
        **appointment_event_json_schema(),
    }


def schema(
    out: Annotated[Path | None, typer.Option(dir_okay=False, help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print (or write) the JSON Schema of the appointment events the booking system publishes."""
    text = json.dumps(event_contract(), indent=2, ensure_ascii=False) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    stderr().print(f"wrote {out}", markup=False)
