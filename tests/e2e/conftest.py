"""The whole system running: real broker, SMTP sink, Twilio sandbox, and the three services as processes."""
from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.smtp_sink import SmtpSink
from tests.support.channels import ACCOUNT_SID, AUTH_TOKEN, CLINIC_NUMBER, TwilioSandbox, start_twilio_sandbox
from tests.support.kafka_server import KafkaServer, free_port
from tests.support.processes import ServiceProcess, wait_for_http

API_KEY = "e2e-booking-key"
CLINIC_CONFIG = Path(__file__).parent / "clinic-e2e.yaml"
_phone_suffixes = itertools.count(random.randrange(1000, 8000))


@dataclass
class Patient:
    name: str
    email: str
    phone: str
    locale: str = "en-CA"
    patient_id: str = ""

    def contact(self, sms: bool = True, email: bool = True) -> dict[str, Any]:
        return {"patient_id": self.patient_id or f"pt-{self.email.split('@')[0]}", "name": self.name,
                "email": self.email, "phone": self.phone, "locale": self.locale, "time_zone": "America/Toronto",
                "consent": {"email": email, "sms": sms}}


@dataclass
class System:
    booking_url: str
    aftercare_url: str
    sink: SmtpSink
    twilio: TwilioSandbox
    kafka: KafkaServer
    services: dict[str, ServiceProcess]
    env: dict[str, str]
    tmp: Path

    def new_patient(self, locale: str = "en-CA") -> Patient:
        tag = uuid.uuid4().hex[:8]
        phone = f"+1416555{next(_phone_suffixes):04d}"
        return Patient(f"Alex Tremblay-{tag}", f"alex.{tag}@example.com", phone, locale)

    def post(self, path: str, body: dict[str, Any], idempotency_key: str | None = None) -> httpx.Response:
        headers = {"X-API-Key": API_KEY} | ({"Idempotency-Key": idempotency_key} if idempotency_key else {})
        return httpx.post(f"{self.booking_url}{path}", json=body, headers=headers, timeout=10)

    def book(self, patient: Patient, starts_at: datetime, idempotency_key: str | None = None,
             sms: bool = True, type: str = "dry_needling") -> dict[str, Any]:
        response = self.post("/v1/appointments", {
            "patient": patient.contact(sms=sms),
            "appointment": {"type": type, "starts_at": starts_at.isoformat(), "duration_minutes": 30,
                            "practitioner": "Sam Lee", "location_id": "downtown"},
        }, idempotency_key)
        assert response.status_code == 201, response.text
        return response.json()

    def change(self, appointment_id: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.post(f"/v1/appointments/{appointment_id}/{action}", body or {})
        assert response.status_code == 200, response.text
        return response.json()


def in_days(days: float) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


def service_env(
    kafka: KafkaServer, sink: SmtpSink, twilio: TwilioSandbox, tmp: Path, aftercare_port: int
) -> dict[str, str]:
    notifier_port = free_port()
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "CLINIC_CONFIG_FILE": str(CLINIC_CONFIG),
        "LOG_JSON": "true",
        "LOG_LEVEL": "INFO",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(sink.port),
        "SMTP_SENDER": "Harbourfront Sports Medicine <no-reply@harbourfront-clinic.example>",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": CLINIC_NUMBER,
        "TWILIO_API_BASE_URL": twilio.url,
        "PATIENT_WEB_URL": f"http://127.0.0.1:{aftercare_port}",
        "LINK_SECRET": "e2e-link-secret-of-at-least-32-bytes",
        "RETRY_FIRST_DELAY_SECONDS": "0.5",
        "BOOKING_API_KEYS": API_KEY,
        "BOOKING_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/booking.db",
        "BOOKING_HTTP_PORT": str(free_port()),
        "BOOKING_OUTBOX_POLL_INTERVAL_S": "0.2",
        "BOOKING_METRICS_PORT": str(free_port()),
        "NOTIFIER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/notifier.db",
        "NOTIFIER_METRICS_PORT": str(free_port()),
        "NOTIFIER_GROUP_ID": f"notifier-{uuid.uuid4().hex[:6]}",
        "NOTIFIER_HTTP_PORT": str(notifier_port),
        "NOTIFIER_PUBLIC_STATUS_CALLBACK_URL": f"http://127.0.0.1:{notifier_port}/twilio/status",
        "AFTERCARE_PUBLIC_STATUS_CALLBACK_URL": f"http://127.0.0.1:{aftercare_port}/twilio/status",
        "AFTERCARE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/aftercare.db",
        "AFTERCARE_HTTP_PORT": str(aftercare_port),
        "AFTERCARE_METRICS_PORT": str(free_port()),
        "AFTERCARE_GROUP_ID": f"aftercare-{uuid.uuid4().hex[:6]}",
    }


@pytest.fixture(scope="session")
def system(kafka: KafkaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    tmp = tmp_path_factory.mktemp("system")
    aftercare_port = free_port()
    sink = SmtpSink(maildir=tmp / "mail")
    sink.start()
    twilio = start_twilio_sandbox(inbound_webhook_url=f"http://127.0.0.1:{aftercare_port}/twilio/inbound")
    env = service_env(kafka, sink, twilio, tmp, aftercare_port)
    services = {
        name: ServiceProcess(name, f"services.{name}", env, tmp / f"{name}.log", f"{name}_started")
        for name in ("booking_events", "notifier", "aftercare")
    }
    try:
        for service in services.values():
            service.start()
        booking_url = f"http://127.0.0.1:{env['BOOKING_HTTP_PORT']}"
        wait_for_http(f"{booking_url}/healthz")
        wait_for_http(f"http://127.0.0.1:{aftercare_port}/healthz")
        yield System(booking_url, f"http://127.0.0.1:{aftercare_port}", sink, twilio, kafka, services, env, tmp)
    finally:
        for service in services.values():
            service.stop()
        twilio.server.stop()
        sink.stop()


@pytest.fixture(autouse=True)
def show_service_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "system" in request.fixturenames:
        system: System = request.getfixturevalue("system")
        for service in system.services.values():
            print(f"--- {service.name} log ---\n{service.log_tail(60)}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
