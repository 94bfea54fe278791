"""Every record the notifier reads ends applied or on the dead-letter topic, with its bytes and a reason;
none is dropped, and the group's lag returns to 0 (real broker, records produced raw)."""
from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY
from sqlalchemy import select

from services.notifier.tables import appointments
from shared.consumer import EventConsumer, KafkaDeadLetters
from shared.events.patient import ChannelConsent
from shared.settings import KafkaSettings
from shared.topics import APPOINTMENTS, APPOINTMENTS_DEAD_LETTER
from tests.integration.consumer_support import (
    Header,
    begin_at_end,
    dead_letters,
    notifier_settings,
    produce,
    running_notifier,
    until_lag_is_zero,
)
from tests.support.events import booked, patient
from tests.support.kafka_server import KafkaServer

pytestmark = pytest.mark.kafka

STARTS = datetime.now(UTC) + timedelta(days=3)


def event_json(appointment_id: str, **changes: object) -> bytes:
    silent = patient(consent=ChannelConsent(email=False, sms=False))  # nothing is sent
    value = json.loads(booked(appointment_id, STARTS, who=silent).model_dump_json())
    value.update(changes)
    return json.dumps(value).encode()


async def test_every_kind_of_bad_record_is_dead_lettered_with_its_bytes_and_a_reason(
    kafka: KafkaServer, tmp_path: Path, unique_id: str
) -> None:
    group = f"notifier-{unique_id}"
    good = f"apt-{unique_id}-good"
    bad_records: dict[str, tuple[bytes | None, bytes | None, list[Header]]] = {
        "bad_header": (f"apt-{unique_id}-1".encode(), event_json(f"apt-{unique_id}-1"),
                       [("event_type", b"\xff\xfe"), ("trace", b"kept")]),
        "missing_key": (None, event_json(f"apt-{unique_id}-2"), [("event_type", b"AppointmentBooked")]),
        "missing_value": (f"apt-{unique_id}-3".encode(), None, []),
        "oversized": (f"apt-{unique_id}-4".encode(), b'{"pad": "' + b"x" * 600_000 + b'"}', []),
        "not_json": (f"apt-{unique_id}-5".encode(), b"\x00\xff\x10 garbage \xc3", []),
        "unknown_event_type": (f"apt-{unique_id}-6".encode(),
                               event_json(f"apt-{unique_id}-6", event_type="AppointmentTeleported"), []),
        "validation_failed": (f"apt-{unique_id}-7".encode(), event_json(f"apt-{unique_id}-7", sequence=0), []),
        "null_header": (f"apt-{unique_id}-8".encode(), event_json(f"apt-{unique_id}-8"), [("trace", None)]),
    }
    reasons = {"null_header": "bad_header"}
    await begin_at_end(kafka.bootstrap_servers, group)
    sent = await produce(kafka.bootstrap_servers, list(bad_records.values()), partition=2)
    sent += await produce(kafka.bootstrap_servers, [(good.encode(), event_json(good), [])], partition=2)
    # The last record of another partition carries a header that is not UTF-8.
    sent += await produce(kafka.bootstrap_servers, [(b"apt-last", event_json("apt-last"),
                                                     [("event_type", b"\xff\xfe")])], partition=4)
    expected = {(p.partition, p.offset): (name, p) for name, p in zip([*bad_records, "-", "last"], sent, strict=True)
                if name != "-"}

    async with running_notifier(notifier_settings(
            kafka.bootstrap_servers, f"sqlite+aiosqlite:///{tmp_path}/notifier.db", group)) as notifier:
        letters = await dead_letters(kafka.bootstrap_servers, APPOINTMENTS_DEAD_LETTER, group, len(expected))
        await until_lag_is_zero(kafka.bootstrap_servers, group)
        async with notifier.engine.connect() as connection:
            applied = (await connection.execute(
                select(appointments.c.appointment_id).where(appointments.c.appointment_id == good))).all()

    assert len(applied) == 1, "the good event behind the bad ones is applied"
    assert len(letters) == len(expected)
    for letter in letters:
        headers = dict(letter.headers)
        position = (int(headers["dlq-source-partition"]), int(headers["dlq-source-offset"]))
        name, original = expected[position]
        assert headers["dlq-source-topic"] == APPOINTMENTS.encode()
        assert headers["dlq-reason"].decode() == reasons.get(name, "bad_header" if name == "last" else name)
        assert headers["dlq-detail"]
        assert (letter.key, letter.value) == (original.key, original.value)
        kept = [(n, v) for n, v in letter.headers if not n.startswith("dlq-")]
        assert kept == [(n, v) for n, v in original.headers if v is not None]


async def test_a_dead_letter_that_cannot_be_written_is_retried_and_the_record_kept_until_it_is(
    kafka: KafkaServer, unique_id: str
) -> None:
    """The dead-letter topic does not exist yet (the broker creates no topic by itself): the bad record
    stays uncommitted until the topic is there, then it is dead-lettered and the lag returns to 0."""
    source, dead = f"test.source.{unique_id}", f"test.source.{unique_id}.dlq"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(source, 1, 1)])
        group = f"reader-{unique_id}"
        handled: list[object] = []

        async def handle(events: list[object]) -> None:
            handled.extend(events)

        broker = KafkaBroker(kafka.bootstrap_servers, logger=None)
        consumer = EventConsumer(
            service="test", group_id=group, handle_batch=handle, dead_letter_topic=dead,
            dead_letters=KafkaDeadLetters(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers),
                                          request_timeout_ms=1000),
            retry_pause_seconds=0.2,
        )
        consumer.subscribe(broker, source)

        def exported_lag() -> float | None:
            return REGISTRY.get_sample_value("clinic_notify_consumer_lag", {
                "service": "test", "group": group, "topic": source, "partition": "0"})

        await produce(kafka.bootstrap_servers, [(b"apt-1", b"not json", [])], topic=source)
        await broker.start()
        try:
            await asyncio.sleep(4)
            with pytest.raises(AssertionError, match="lag stayed at 1"):
                await until_lag_is_zero(kafka.bootstrap_servers, group, source, timeout_s=2)
            assert exported_lag() == 1, "the consumer reports the record it holds"
            await admin.create_topics([NewTopic(dead, 1, 1)])
            [letter] = await dead_letters(kafka.bootstrap_servers, dead, group, 1)
            await until_lag_is_zero(kafka.bootstrap_servers, group, source)
            await asyncio.sleep(0.5)
            assert exported_lag() == 0
        finally:
            await broker.stop()
        assert letter.value == b"not json" and dict(letter.headers)["dlq-reason"] == b"not_json"
        assert handled == []
    finally:
        await admin.close()
