"""The ops console as deployed (`python -m console`, its own process) driven by Debian's headless Chromium.

Each test leaves a screenshot in test-artifacts/screenshots/<test name>.png, taken as it ends.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from services.aftercare.tables import SCHEMA as AFTERCARE_SCHEMA
from services.booking_events.tables import metadata as BOOKING_METADATA
from services.notifier.tables import SCHEMA as NOTIFIER_SCHEMA
from shared.database import create_engine, create_tables
from tests.support.kafka_server import KafkaServer, free_port

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@dataclass(frozen=True)
class Console:
    url: str
    token: str
    booking_database_url: str
    notifier_database_url: str
    aftercare_database_url: str


async def _create_databases(urls: dict[str, str]) -> None:
    for name, metadata in (("booking", BOOKING_METADATA), ("notifier", NOTIFIER_SCHEMA),
                           ("aftercare", AFTERCARE_SCHEMA)):
        engine = create_engine(urls[name])
        try:
            await create_tables(engine, metadata)
        finally:
            await engine.dispose()


@pytest.fixture(scope="session")
def console(kafka: KafkaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("console")
    urls = {name: f"sqlite+aiosqlite:///{folder}/{name}.db" for name in ("booking", "notifier", "aftercare")}
    asyncio.run(_create_databases(urls))
    token = secrets.token_urlsafe(32)
    port = free_port()
    env = {
        **os.environ,
        "CONSOLE_TOKEN": token, "CONSOLE_PORT": str(port),
        "CONSOLE_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "CONSOLE_BOOKING_DATABASE_URL": urls["booking"],
        "CONSOLE_NOTIFIER_DATABASE_URL": urls["notifier"],
        "CONSOLE_AFTERCARE_DATABASE_URL": urls["aftercare"],
        "LOG_JSON": "false",
    }
    log_path = folder / "console.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "console"], cwd=REPO, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the console exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the console did not answer within 60 s:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield Console(url, token, urls["booking"], urls["notifier"], urls["aftercare"])
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[webdriver.Chrome]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Debian's chromium and chromium-driver are not installed (deploy/setup.sh --with-browser)")
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run",
                     "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / f"{request.node.name}.png"))
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)

