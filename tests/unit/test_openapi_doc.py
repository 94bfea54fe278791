"""The booking API's published OpenAPI document: current with the app, and naming what integrators send."""
from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli import app
from cli.api_documents import booking_api_openapi

PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "booking-api.openapi.json"


def test_the_checked_in_openapi_matches_the_app() -> None:
    assert json.loads(PUBLISHED.read_text(encoding="utf-8")) == booking_api_openapi(), (
        "regenerate with: clinic-notify openapi --out docs/booking-api.openapi.json"
    )


def test_the_cli_writes_the_document(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    result = CliRunner().invoke(app, ["openapi", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text(encoding="utf-8")) == booking_api_openapi()


def test_the_document_names_the_api_key_and_the_idempotency_key() -> None:
    document = booking_api_openapi()
    book = document["paths"]["/v1/appointments"]["post"]
    assert {"in": "header", "name": "X-API-Key", "type": "apiKey"}.items() <= next(
        iter(document["components"]["securitySchemes"].values())
    ).items()
    assert "Idempotency-Key" in [parameter["name"] for parameter in book["parameters"]]
    assert {"201", "401", "409", "422"} <= set(book["responses"])
