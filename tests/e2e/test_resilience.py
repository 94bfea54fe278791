"""Nothing is lost and nothing is sent twice: bad events are dead-lettered, restarts repeat nothing."""
from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition

from shared.topics import APPOINTMENTS, APPOINTMENTS_DEAD_LETTER
from tests.e2e.conftest import System, in_days
from tests.e2e.test_booking_notifications import settle
from tests.support.channels import mails_to, wait_for_mails
from tests.support.events import booked, patient

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]


async def publish_raw(bootstrap: str, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(APPOINTMENTS, value=value, key=key)
    finally:
        await producer.stop()


async def dead_letters_with_key(
    bootstrap: str, key: bytes, expected: int, timeout: float = 20.0
) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(APPOINTMENTS_DEAD_LETTER, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        found: list[ConsumerRecord] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and len(found) < expected:
            batch = await consumer.getmany(timeout_ms=500)
            found += [record for records in batch.values() for record in records if record.key == key]
        return found
    finally:
        await consumer.stop()


async def test_a_malformed_event_goes_to_the_dead_letter_topic_with_its_reason_and_the_next_event_is_processed(
    system: System,
) -> None:
    key = f"apt-broken-{uuid.uuid4().hex[:6]}".encode()
    good = booked(f"apt-direct-{uuid.uuid4().hex[:6]}", in_days(9),
                  who=patient(email=f"direct.{uuid.uuid4().hex[:6]}@example.com", phone="+14165550190"))
    broken = json.loads(good.model_dump_json()) | {"sequence": 0, "appointment_id": key.decode()}
    broken["patient"]["email"] = "not-an-email"
    await publish_raw(system.kafka.bootstrap_servers, key, json.dumps(broken).encode())
    await publish_raw(system.kafka.bootstrap_servers, key, b"{this is not json")
    await publish_raw(system.kafka.bootstrap_servers, good.appointment_id.encode(), good.model_dump_json().encode())

    # The notifier and aftercare each read the topic, so each dead-letters both events.
    letters = await dead_letters_with_key(system.kafka.bootstrap_servers, key, expected=4)
    assert len(letters) == 4
    headers = [{name: value.decode() for name, value in record.headers} for record in letters]
    assert {h["dlq-consumer-group"] for h in headers} == {
        system.env["NOTIFIER_GROUP_ID"], system.env["AFTERCARE_GROUP_ID"]}
    assert sorted(h["dlq-reason"] for h in headers) == ["not_json"] * 2 + ["validation_failed"] * 2
    assert all(h["dlq-source-topic"] == APPOINTMENTS for h in headers)
    details = " | ".join(h["dlq-detail"] for h in headers)
    assert "patient.email" in details and "sequence" in details and "json" in details.lower()
    assert "not-an-email" not in details  # the reason names the field, never the patient's value

    assert good.patient.email is not None and wait_for_mails(system.sink, good.patient.email, 1)


def test_a_notifier_killed_between_two_bookings_confirms_both_exactly_once(system: System) -> None:
    notifier = system.services["notifier"]
    first, second = system.new_patient(), system.new_patient()
    system.book(first, in_days(10))
    wait_for_mails(system.sink, first.email, 1)
    system.twilio.wait_for_messages(first.phone, 1)

    notifier.kill()
    system.book(second, in_days(11))  # accepted while no notifier runs
    notifier.start()

    wait_for_mails(system.sink, second.email, 1, timeout=30)
    system.twilio.wait_for_messages(second.phone, 1, timeout=30)
    settle(3)
    for someone in (first, second):
        assert len(mails_to(system.sink, someone.email)) == 1
        assert len(system.twilio.messages(someone.phone)) == 1


def test_service_logs_carry_no_patient_details(system: System) -> None:
    patient = system.new_patient()
    booking = system.book(patient, in_days(2))
    wait_for_mails(system.sink, patient.email, 1)
    system.change(booking["appointment_id"], "complete")
    system.twilio.wait_for_messages(patient.phone, 3, timeout=20)  # confirmation, advice, first check-in
    system.twilio.text_in(patient.phone, "7, and my chest hurts")
    settle(2)
    national = patient.phone.removeprefix("+1")
    traces = [patient.name, patient.name.split()[0], patient.email, patient.phone, national,
              f"{national[:3]}-{national[3:6]}-{national[6:]}", "chest hurts"]
    for service in system.services.values():
        log = service.log_path.read_text(errors="replace")
        assert "message_sent" in log or service.name == "booking_events"
        leaked = [trace for trace in traces if trace in log]
        assert not leaked, f"{service.name} logged patient details: {leaked}"
