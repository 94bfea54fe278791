"""`clinic-notify dead-letters replay` against the real broker: a refused event goes back to where it was read,
with its own headers, once, however many times operators run the replay."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from typer.testing import CliRunner

from cli import app
from cli.dead_letter_replay import journal_topic
from shared.topics import APPOINTMENTS, CONSENT_DEAD_LETTER
from tests.support.kafka_server import KafkaServer

pytestmark = pytest.mark.kafka
runner = CliRunner()
# Its own dead-letter topic keeps these tests apart from the others' dead letters and journal.
DLQ = CONSENT_DEAD_LETTER


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


async def dead_letter(bootstrap: str, key: str, value: bytes, *, reason: str, source_partition: int,
                      source_offset: int, group: str = "notifier", extra: dict[str, bytes] | None = None) -> int:
    """A dead letter as the consumers write it; returns its offset in the dead-letter topic."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        headers = [(name, text) for name, text in (extra or {}).items()] + [
            ("dlq-reason", reason.encode()), ("dlq-detail", b"KeyError after 3 attempts"),
            ("dlq-source-topic", APPOINTMENTS.encode()), ("dlq-source-partition", str(source_partition).encode()),
            ("dlq-source-offset", str(source_offset).encode()), ("dlq-consumer-group", group.encode()),
            ("dlq-failed-at", datetime.now(UTC).isoformat().encode()),
        ]
        sent = await producer.send_and_wait(DLQ, value, key=key.encode(), headers=headers)
        return int(sent.offset)
    finally:
        await producer.stop()


async def records_with_key(bootstrap: str, topic: str, key: str) -> list[ConsumerRecord]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, part["partition"]) for part in described["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[ConsumerRecord] = []
        unread = [p for p in partitions if ends[p] > 0]
        while unread:
            for batch in (await consumer.getmany(*unread, timeout_ms=500)).values():
                found.extend(record for record in batch if record.key == key.encode())
            unread = [p for p in unread if await consumer.position(p) < ends[p]]
        return found
    finally:
        await consumer.stop()


def test_a_replayed_dead_letter_is_back_on_its_source_partition_with_its_headers_and_goes_back_once(
    kafka: KafkaServer, unique_id: str
) -> None:
    key = f"apt-replay-{unique_id}"
    value = b'{"event_type": "AppointmentBooked", "sequence": 1}'
    asyncio.run(dead_letter(kafka.bootstrap_servers, key, value, reason="processing_failed", source_partition=4,
                            source_offset=77, extra={"event_type": b"AppointmentBooked", "trace": b"t-1"}))

    code, output = run("dead-letters", "replay", "--bootstrap-servers", kafka.bootstrap_servers, "--topic", DLQ,
                       "--reason", "processing_failed", "--group", "notifier")
    assert code == 0, output
    assert f"{APPOINTMENTS}/4/77" in output and "replayed to" in output

    [back] = asyncio.run(records_with_key(kafka.bootstrap_servers, APPOINTMENTS, key))
    assert back.partition == 4 and back.value == value
    assert back.headers == (("event_type", b"AppointmentBooked"), ("trace", b"t-1"))

    code, output = run("dead-letters", "replay", "--bootstrap-servers", kafka.bootstrap_servers, "--topic", DLQ,
                       "--reason", "processing_failed")
    assert code == 0, output
    assert "already replayed" in output
    assert len(asyncio.run(records_with_key(kafka.bootstrap_servers, APPOINTMENTS, key))) == 1
    [entry] = asyncio.run(records_with_key(kafka.bootstrap_servers, journal_topic(DLQ), f"{APPOINTMENTS}/4/77"))
    assert b"cli:" in entry.value


def test_a_dry_run_publishes_nothing_and_filters_choose_what_goes_back(kafka: KafkaServer, unique_id: str) -> None:
    bootstrap = kafka.bootstrap_servers
    refused = f"apt-refused-{unique_id}"
    invalid = f"apt-invalid-{unique_id}"
    other_group = f"apt-aftercare-{unique_id}"
    asyncio.run(dead_letter(bootstrap, refused, b"{}", reason="processing_failed", source_partition=1,
                            source_offset=9000))
    asyncio.run(dead_letter(bootstrap, invalid, b"{}", reason="validation_failed", source_partition=1,
                            source_offset=9001))
    asyncio.run(dead_letter(bootstrap, other_group, b"{}", reason="processing_failed", source_partition=1,
                            source_offset=9002, group="aftercare"))

    code, output = run("dead-letters", "replay", "--bootstrap-servers", bootstrap, "--topic", DLQ,
                       "--reason", "processing_failed", "--group", "notifier", "--dry-run")
    assert code == 0, output
    assert refused in output and "would be replayed" in output
    assert invalid not in output and other_group not in output
    assert asyncio.run(records_with_key(bootstrap, APPOINTMENTS, refused)) == []

    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    code, output = run("dead-letters", "replay", "--bootstrap-servers", bootstrap, "--topic", DLQ,
                       "--since", later)
    assert code == 0, output
    assert "0 selected" in output

    code, output = run("dead-letters", "replay", "--bootstrap-servers", bootstrap, "--topic", DLQ,
                       "--reason", "processing_failed", "--group", "notifier", "--source-topic", APPOINTMENTS)
    assert code == 0, output
    assert len(asyncio.run(records_with_key(bootstrap, APPOINTMENTS, refused))) == 1
    assert asyncio.run(records_with_key(bootstrap, APPOINTMENTS, invalid)) == []
    assert asyncio.run(records_with_key(bootstrap, APPOINTMENTS, other_group)) == []


def test_one_event_refused_by_both_groups_goes_back_once(kafka: KafkaServer, unique_id: str) -> None:
    key = f"apt-both-{unique_id}"
    offsets = [asyncio.run(dead_letter(kafka.bootstrap_servers, key, b"{}", reason="processing_failed",
                                       source_partition=2, source_offset=5150, group=group))
               for group in ("notifier", "aftercare")]

    code, output = run("dead-letters", "replay", "--bootstrap-servers", kafka.bootstrap_servers, "--topic", DLQ,
                       *(f"--at=0:{offset}" for offset in offsets))
    assert code == 0, output
    assert output.count(f"replayed to {APPOINTMENTS}/2/") == 2, "both dead letters say where the event went"
    assert len(asyncio.run(records_with_key(kafka.bootstrap_servers, APPOINTMENTS, key))) == 1


def test_listing_still_works_beside_the_replay_command(kafka: KafkaServer, unique_id: str) -> None:
    key = f"apt-list-{unique_id}"
    asyncio.run(dead_letter(kafka.bootstrap_servers, key, b"{}", reason="validation_failed", source_partition=0,
                            source_offset=1))
    code, output = run("dead-letters", "--bootstrap-servers", kafka.bootstrap_servers, "--topic", DLQ)
    assert code == 0, output
    assert key in output and "validation_failed" in output
