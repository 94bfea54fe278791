"""`clinic-notify asyncapi` and `clinic-notify openapi`: the documents integrators build against.

Both are generated from the code (the event models, the booking API's FastAPI app) and checked in
under docs/; a test fails when the checked-in copy no longer matches what the code generates.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from cli.asyncapi_document import asyncapi_document
from cli.output import stderr
from services.booking_events import bootstrap
from services.booking_events.settings import BookingSettings

Out = Annotated[Path | None, typer.Option(dir_okay=False, help="Write to this file instead of stdout.")]


def register(app: typer.Typer) -> None:
    app.command("asyncapi")(asyncapi)
    app.command("openapi")(openapi)


def asyncapi_yaml() -> str:
    return yaml.safe_dump(asyncapi_document(), sort_keys=False, allow_unicode=True, width=110)


def booking_api_openapi() -> dict[str, Any]:
    """The OpenAPI document of the booking API, from the app `bootstrap.build` assembles (nothing started)."""
    parts = bootstrap.build(BookingSettings(database_url="sqlite+aiosqlite://"))
    return parts.app.openapi()


def asyncapi(out: Out = None) -> None:
    """Print (or write) the AsyncAPI 3.0 document of every Kafka topic the services read or write."""
    _emit(asyncapi_yaml(), out)


def openapi(out: Out = None) -> None:
    """Print (or write) the OpenAPI document of the booking API."""
    _emit(json.dumps(booking_api_openapi(), indent=2, ensure_ascii=False) + "\n", out)


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    stderr().print(f"wrote {out}", markup=False)
