"""What became of each message, end to end: Twilio's status callbacks reach the services, an SMS the
carrier cannot deliver goes by email once, integrators read it on clinic.deliveries.v1, operators with
`clinic-notify deliveries`."""
from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from typer.testing import CliRunner

from cli import app
from shared.topics import DELIVERIES
from tests.e2e.conftest import CLINIC_CONFIG, System
from tests.support.channels import mails_to, wait_for_mails
from tests.unit.templates.test_templates import treatment_words_in

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]
# How the reminder's and the confirmation's email subjects start or say it, in each language.
SUBJECTS = {"en-CA": ("Reminder", "confirmed"), "fr-CA": ("Rappel", "confirmé")}


def deliveries_command(system: System, appointment_id: str) -> str:
    result = CliRunner().invoke(app, [
        "deliveries", appointment_id, "--database-url", system.env["NOTIFIER_DATABASE_URL"],
        "--aftercare-database-url", system.env["AFTERCARE_DATABASE_URL"], "--clinic-config", str(CLINIC_CONFIG),
    ])
    assert result.exit_code == 0, result.output
    return result.output


def wait_for_output(system: System, appointment_id: str, *words: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        output = deliveries_command(system, appointment_id)
        if all(word in output for word in words) or time.monotonic() > deadline:
            return output
        time.sleep(0.5)


async def status_events(bootstrap_servers: str, appointment_id: str, until: Any) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(DELIVERIES, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(60):
            while not until(found):
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found.extend(json.loads(r.value) for r in records if r.key == appointment_id.encode())
    finally:
        await consumer.stop()
    return found


@pytest.mark.parametrize("locale", ["en-CA", "fr-CA"])
def test_an_sms_reported_undelivered_30003_is_recorded_published_and_sent_by_email_once(
        system: System, locale: str) -> None:
    reminder, confirmed = SUBJECTS[locale]
    patient = system.new_patient(locale=locale)
    # The confirmation and the first reminder are reported undelivered; the second reminder is delivered.
    system.twilio.inject_fault(30003, to=patient.phone, kind="delivery", times=2)
    starts_at = (datetime.now(UTC) + timedelta(seconds=25)).replace(microsecond=0)
    appointment_id = system.book(patient, starts_at)["appointment_id"]

    system.twilio.wait_for_messages(patient.phone, 3, timeout=40)
    reminders = wait_for_mails(system.sink, patient.email, 1, timeout=30,
                               where=lambda mail: mail.message["Subject"].startswith(reminder))
    time.sleep(3)  # time for a second fallback, if there were to be one
    assert len(reminders) == 1
    assert len([m for m in mails_to(system.sink, patient.email) if m.message["Subject"].startswith(reminder)]) == 1
    # The confirmation's SMS was undelivered too, but its email copy went out already: no second email.
    assert len([m for m in mails_to(system.sink, patient.email) if confirmed in m.message["Subject"]]) == 1
    assert all(treatment_words_in(message["body"]) == [] for message in system.twilio.messages(patient.phone))

    output = wait_for_output(system, appointment_id, "undelivered", "30003", "reminder_24h:fallback", "delivered")
    assert "undelivered" in output and "30003" in output and "reminder_24h:fallback" in output
    assert patient.phone not in output and patient.email not in output

    events = asyncio.run(status_events(
        system.kafka.bootstrap_servers, appointment_id,
        lambda found: any(e["step"] == "reminder_24h:fallback" and e["status"] == "sent" for e in found),
    ))
    undelivered = [e for e in events if e["source"] == "provider" and e["status"] == "undelivered"]
    assert {(e["step"], e["error_code"]) for e in undelivered} == {("confirmation", "30003"),
                                                                   ("reminder_24h", "30003")}
    assert [e["fallback_channel"] for e in undelivered if e["step"] == "reminder_24h"] == ["email"]
    assert all(patient.phone not in json.dumps(e) and patient.email not in json.dumps(e) for e in events)


def test_a_delivered_sms_shows_delivered_in_clinic_notify_deliveries(system: System) -> None:
    patient = system.new_patient(locale="fr-CA")
    appointment_id = system.book(patient, (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0))[
        "appointment_id"]
    system.twilio.wait_for_messages(patient.phone, 1)
    output = wait_for_output(system, appointment_id, "delivered")
    [sms_line] = [line for line in output.splitlines() if "confirmation" in line and "sms" in line]
    assert "delivered" in sms_line and "undelivered" not in sms_line
