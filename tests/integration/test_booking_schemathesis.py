"""Schemathesis 4 against the running booking API: every check, no failure.

The service runs as it does in production (uvicorn on a loopback port, its own SQLite file, the
clinic configuration) with a publisher that records instead of reaching Kafka; Schemathesis reads
the API's own /openapi.json with an API key and sends valid and invalid requests to every operation.

One setting is declared, not hidden: `positive_data_acceptance` also accepts 422, because a few
rules cannot be written in JSON Schema. A request the schema allows is refused 422 when the phone
number is not valid for its country (phonenumbers), or the start is in the past (the service's
clock). Those rules have unit tests of their own (tests/unit/booking_events/test_validation.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.kafka_server import free_port

REPO = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
API_KEY = "schemathesis-key"
EXAMPLES_PER_OPERATION = 5

SERVER = textwrap.dedent(
    """
    import asyncio, sys
    import uvicorn
    from services.booking_events import bootstrap
    from services.booking_events.settings import BookingSettings
    from services.booking_events.tables import SCHEMA
    from shared.database import create_tables
    from shared.outbox.kafka_publisher import RecordingPublisher

    async def main() -> None:
        parts = bootstrap.build(BookingSettings(), publisher=RecordingPublisher())
        await create_tables(parts.engine, SCHEMA)
        config = uvicorn.Config(parts.app, host="127.0.0.1", port=parts.settings.http_port, log_level="warning")
        await uvicorn.Server(config).serve()

    asyncio.run(main())
    """
)

CONFIG = textwrap.dedent(
    """
    [checks.positive_data_acceptance]
    expected-statuses = ["2xx", "401", "404", "409", "422"]
    """
)


@pytest.fixture
def booking_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = os.environ | {
        "BOOKING_API_KEYS": API_KEY,
        "BOOKING_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'booking.db'}",
        "BOOKING_HTTP_PORT": str(port),
        "BOOKING_RATE_LIMIT_PER_SECOND": "10000",
        "BOOKING_RATE_LIMIT_BURST": "10000",
        "LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / "booking.log").open("w")
    process = subprocess.Popen([sys.executable, "-c", SERVER], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the booking API did not start:\n{(tmp_path / 'booking.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def test_schemathesis_finds_nothing_wrong_with_the_booking_api(booking_url: str, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    started = time.monotonic()
    run = subprocess.run(
        [
            str(SCHEMATHESIS), "--config-file", str(config), "--no-color", "run", f"{booking_url}/openapi.json",
            "--checks", "all", "-H", f"X-API-Key: {API_KEY}", "--max-examples", str(EXAMPLES_PER_OPERATION),
            "--seed", "20250303", "--workers", "1", "--generation-database", "none",
        ],
        capture_output=True, text=True, timeout=170, cwd=tmp_path,
    )
    print(f"schemathesis: {time.monotonic() - started:.1f}s")
    print(run.stdout[-1500:])
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
