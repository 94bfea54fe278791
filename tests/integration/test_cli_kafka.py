"""The operator CLI against the real broker: dead letters without their bodies, lag per group."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from typer.testing import CliRunner

from cli import app
from shared.topics import APPOINTMENTS, APPOINTMENTS_DEAD_LETTER
from tests.support.kafka_server import KafkaServer, free_port

pytestmark = pytest.mark.kafka
runner = CliRunner()
PATIENT_BODY = '{"patient": {"name": "Morgan Privatename", "phone": "+14165550177"}, "sequence": "x"}'


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


async def publish(bootstrap: str, topic: str, key: str, value: str, partition: int | None = None,
                  headers: dict[str, str] | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, value.encode(), key=key.encode(), partition=partition,
            headers=[(name, text.encode()) for name, text in (headers or {}).items()],
        )
    finally:
        await producer.stop()


async def end_offset(bootstrap: str, partition: TopicPartition) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return (await consumer.end_offsets([partition]))[partition]
    finally:
        await consumer.stop()


async def commit(bootstrap: str, group: str, partition: TopicPartition, offset: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([partition])
        await consumer.commit({partition: offset})
    finally:
        await consumer.stop()


def table_rows(output: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("│ ").split("│")]
            for line in output.splitlines() if line.startswith("│")]


def test_a_dead_letter_shows_its_reason_and_source_but_not_its_body(kafka: KafkaServer, unique_id: str) -> None:
    key = f"apt-dlq-{unique_id}"
    asyncio.run(publish(kafka.bootstrap_servers, APPOINTMENTS_DEAD_LETTER, key, PATIENT_BODY, headers={
        "dlq-reason": "validation_failed",
        "dlq-detail": "sequence: Input should be a valid integer",
        "dlq-source-topic": APPOINTMENTS,
        "dlq-source-partition": "4",
        "dlq-source-offset": "1234",
        "dlq-consumer-group": "notifier",
    }))

    code, output = run("dead-letters", "--bootstrap-servers", kafka.bootstrap_servers)
    assert code == 0, output
    [row] = [row for row in table_rows(output) if key in row]
    assert "validation_failed" in row and "sequence: Input should be a valid integer" in row
    assert f"{APPOINTMENTS} 4:1234" in row and "notifier" in row
    assert "Privatename" not in output and "+14165550177" not in output

    code, output = run("dead-letters", "--bootstrap-servers", kafka.bootstrap_servers, "--show-body", "--limit", "1")
    assert code == 0, output
    assert key in output and "Morgan Privatename" in output


def test_lag_is_the_end_offset_less_the_groups_commit(kafka: KafkaServer, unique_id: str) -> None:
    group = f"made-up-{unique_id}"
    partition = TopicPartition(APPOINTMENTS, 0)
    for n in range(3):
        asyncio.run(publish(kafka.bootstrap_servers, APPOINTMENTS, f"apt-lag-{n}", "{}", partition=0))
    end = asyncio.run(end_offset(kafka.bootstrap_servers, partition))
    asyncio.run(commit(kafka.bootstrap_servers, group, partition, end - 3))

    code, output = run("lag", "--bootstrap-servers", kafka.bootstrap_servers, "--group", group)
    assert code == 0, output
    rows = {row[1]: row for row in table_rows(output) if row[0] == group}
    assert rows["0"] == [group, "0", str(end - 3), str(end), "3"]
    assert len(rows) == 6  # every partition of the topic, committed or not
    assert rows["1"][2] == "no commit"


def test_a_broker_that_does_not_answer_is_reported_with_its_own_exit_code() -> None:
    code, output = run("lag", "--bootstrap-servers", f"127.0.0.1:{free_port()}")
    assert code == 3
    assert "cannot read offsets" in output


def test_an_unknown_dead_letter_topic_is_refused(kafka: KafkaServer) -> None:
    code, output = run("dead-letters", "--bootstrap-servers", kafka.bootstrap_servers, "--topic", "no.such.topic")
    assert code == 1
    assert "no.such.topic does not exist" in output
