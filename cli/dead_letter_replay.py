"""Replaying dead letters onto the topic they came from, each one once.

A dead letter holds the bytes of the event a consumer refused (key, value) and, in its `dlq-*` headers,
why (`dlq-reason`, `dlq-detail`) and where it was read (`dlq-source-topic`, `-partition`, `-offset`,
`dlq-consumer-group`). Replaying one republishes its key, value and other headers, the `dlq-*` ones
removed, to the source topic and partition it was read from (so an appointment's events stay on one
partition), then records it in the replay journal.

The journal is the Kafka topic `<dead-letter topic>.replayed`, one record per replayed event, keyed by its
source position `topic/partition/offset`. A Kafka topic rather than a file beside the operator: the CLI
on one operator's machine and the console on the ops host must see the same journal, and it lives and
is secured where the dead letters live. Two dead letters of one source event (both consumer groups
refused it) share a key: the event goes back once, and every group reads it again from there. A
replayed event that fails again is a new dead letter with a new source position, replayable in turn.

The journal entry is written after the broker acknowledged the republished event: if the journal write
is lost, a later run republishes it again, and consumers apply an event once (per-appointment sequence),
so the duplicate is harmless; the other order could mark as replayed an event that never went back.
Two operators replaying the same dead letter in the same seconds can both republish it, with the same
harmless duplicate.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from cli.kafka_reading import READ_TIMEOUT_S, admin_client, standalone_consumer, topic_partitions
from shared.kafka_security import kafka_client_kwargs
from shared.settings import KafkaSettings

DLQ_HEADER_PREFIX = "dlq-"
JOURNAL_SUFFIX = ".replayed"
# Outlives the dead letters it speaks of (their topics keep 30 days; a journal entry is written later).
JOURNAL_RETENTION_MS = 60 * 24 * 3600 * 1000

Progress = Callable[[int, int], None]  # (done, total)


def journal_topic(dead_letter_topic: str) -> str:
    return dead_letter_topic + JOURNAL_SUFFIX


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, record: ConsumerRecord) -> DeadLetter:
        return cls(record.topic, record.partition, record.offset,
                   datetime.fromtimestamp(record.timestamp / 1000, UTC), record.key, record.value,
                   tuple((name, value or b"") for name, value in record.headers or ()))

    def header(self, name: str) -> str | None:
        for header_name, value in self.headers:
            if header_name == name:
                return value.decode("utf-8", "replace")
        return None

    @property
    def position(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def reason(self) -> str | None:
        return self.header("dlq-reason")

    @property
    def detail(self) -> str | None:
        return self.header("dlq-detail")

    @property
    def consumer_group(self) -> str | None:
        return self.header("dlq-consumer-group")

    @property
    def source_topic(self) -> str | None:
        return self.header("dlq-source-topic")

    @property
    def source(self) -> tuple[str, int, int] | None:
        """Where the consumer read the event, if the headers say so in full."""
        topic, partition, offset = (self.header(f"dlq-source-{part}") for part in ("topic", "partition", "offset"))
        if not topic or partition is None or offset is None:
            return None
        try:
            return topic, int(partition), int(offset)
        except ValueError:
            return None

    @property
    def source_position(self) -> str | None:
        source = self.source
        return None if source is None else "/".join(map(str, source))

    def replay_headers(self) -> list[tuple[str, bytes]]:
        return [(name, value) for name, value in self.headers if not name.startswith(DLQ_HEADER_PREFIX)]


@dataclass(frozen=True)
class Selection:
    """Which dead letters: every given criterion must hold; none given selects them all."""

    reason: str | None = None
    source_topic: str | None = None
    consumer_group: str | None = None
    since: datetime | None = None  # when it was dead-lettered, inclusive
    until: datetime | None = None  # exclusive
    positions: frozenset[tuple[int, int]] | None = None  # (partition, offset) in the dead-letter topic

    def matches(self, letter: DeadLetter) -> bool:
        return (
            (self.reason is None or letter.reason == self.reason)
            and (self.source_topic is None or letter.source_topic == self.source_topic)
            and (self.consumer_group is None or letter.consumer_group == self.consumer_group)
            and (self.since is None or letter.timestamp >= self.since)
            and (self.until is None or letter.timestamp < self.until)
            and (self.positions is None or (letter.partition, letter.offset) in self.positions)
        )


@dataclass(frozen=True)
class JournalEntry:
    source_position: str
    dead_letter: str
    replayed_to: str
    replayed_at: datetime
    by: str


@dataclass
class ReplayReport:
    selected: list[DeadLetter] = field(default_factory=list)
    replayed: dict[str, str] = field(default_factory=dict)  # dead letter position -> where it went
    already: dict[str, JournalEntry] = field(default_factory=dict)  # dead letter position -> earlier replay
    no_source: list[DeadLetter] = field(default_factory=list)  # headers do not say where it came from

    @property
    def to_replay(self) -> list[DeadLetter]:
        done = set(self.replayed) | set(self.already) | {letter.position for letter in self.no_source}
        return [letter for letter in self.selected if letter.position not in done]


async def read_topic(bootstrap_servers: str, topic: str) -> list[ConsumerRecord]:
    """Every record the topic holds now, in (partition, offset) order; no consumer group joined."""
    async with admin_client(bootstrap_servers) as admin:
        partitions = await topic_partitions(admin, topic)
    async with standalone_consumer(bootstrap_servers) as consumer:
        consumer.assign(partitions)
        beginnings = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        for partition in partitions:
            consumer.seek(partition, beginnings[partition])
        wanted = {p for p in partitions if ends[p] > beginnings[p]}
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} not read to its end within {READ_TIMEOUT_S:.0f}s")
            batches = await consumer.getmany(*wanted, timeout_ms=500)
            records.extend(record for batch in batches.values() for record in batch)
            for partition in list(wanted):
                if await consumer.position(partition) >= ends[partition]:
                    wanted.discard(partition)
    records.sort(key=lambda record: (record.partition, record.offset))
    return records


async def read_dead_letters(bootstrap_servers: str, topic: str, selection: Selection) -> list[DeadLetter]:
    """The dead letters of `topic` that the selection matches, oldest first."""
    letters = [DeadLetter.of(record) for record in await read_topic(bootstrap_servers, topic)]
    return sorted((letter for letter in letters if selection.matches(letter)),
                  key=lambda letter: (letter.timestamp, letter.partition, letter.offset))


async def read_journal(bootstrap_servers: str, dead_letter_topic: str) -> dict[str, JournalEntry]:
    """Source position -> its first replay; empty when nothing was ever replayed from this topic."""
    try:
        records = await read_topic(bootstrap_servers, journal_topic(dead_letter_topic))
    except LookupError:
        return {}
    journal: dict[str, JournalEntry] = {}
    for record in records:
        entry = _journal_entry(record)
        if entry is not None:
            journal.setdefault(entry.source_position, entry)
    return journal


def _journal_entry(record: ConsumerRecord) -> JournalEntry | None:
    try:
        body: dict[str, Any] = json.loads(record.value or b"")
        return JournalEntry(record.key.decode(), body["dead_letter"], body["replayed_to"],
                            datetime.fromisoformat(body["replayed_at"]), body.get("by", "?"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # not written by us; it marks nothing


async def ensure_journal(bootstrap_servers: str, dead_letter_topic: str) -> None:
    name = journal_topic(dead_letter_topic)
    settings = KafkaSettings(bootstrap_servers=bootstrap_servers)
    async with admin_client(bootstrap_servers) as admin:
        if name in await admin.list_topics():
            return
        topic = NewTopic(name=name, num_partitions=1, replication_factor=settings.replication_factor,
                         topic_configs={"retention.ms": str(JOURNAL_RETENTION_MS),
                                        "min.insync.replicas": str(settings.min_insync_replicas)})
        try:
            response = await admin.create_topics([topic])
        except TopicAlreadyExistsError:
            return  # another operator created it between our list and create
        for _name, code, *message in response.topic_errors:
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(f"the broker refused to create {name}: error {code} {message}")


async def plan_replay(bootstrap_servers: str, dead_letter_topic: str, selection: Selection) -> ReplayReport:
    """What a replay would do: the selected dead letters, those replayed before, those it cannot replay."""
    report = ReplayReport(selected=await read_dead_letters(bootstrap_servers, dead_letter_topic, selection))
    journal = await read_journal(bootstrap_servers, dead_letter_topic)
    for letter in report.selected:
        source = letter.source_position
        if source is None:
            report.no_source.append(letter)
        elif source in journal:
            report.already[letter.position] = journal[source]
    return report


async def replay(
    bootstrap_servers: str,
    dead_letter_topic: str,
    selection: Selection,
    *,
    by: str,
    dry_run: bool = False,
    on_progress: Progress | None = None,
) -> ReplayReport:
    """Republish the selected dead letters not replayed before, journalling each after its acknowledgement."""
    report = await plan_replay(bootstrap_servers, dead_letter_topic, selection)
    wanted = report.to_replay
    # Two dead letters of one source event (two groups refused it) send it back once.
    once = list({letter.source_position: letter for letter in reversed(wanted)}.values())[::-1]
    if dry_run or not once:
        return report
    await ensure_journal(bootstrap_servers, dead_letter_topic)
    sent = await _republish(bootstrap_servers, dead_letter_topic, once, by, on_progress)
    for letter in wanted:
        report.replayed[letter.position] = sent[str(letter.source_position)]
    return report


async def _republish(bootstrap_servers: str, dead_letter_topic: str, letters: Sequence[DeadLetter],
                     by: str, on_progress: Progress | None) -> dict[str, str]:
    """Source position -> where the event now is, for each letter."""
    producer = AIOKafkaProducer(**kafka_client_kwargs(KafkaSettings(bootstrap_servers=bootstrap_servers)),
                                client_id="clinic-notify-replay", enable_idempotence=True, acks="all",
                                request_timeout_ms=15_000)
    await producer.start()
    sent_to: dict[str, str] = {}
    try:
        if on_progress:
            on_progress(0, len(letters))
        for done, letter in enumerate(letters, start=1):
            source = letter.source
            assert source is not None  # letters without a source were set aside by plan_replay
            topic, partition, _offset = source
            sent = await producer.send_and_wait(topic, letter.value, key=letter.key, partition=partition,
                                                headers=letter.replay_headers())
            replayed_to = f"{sent.topic}/{sent.partition}/{sent.offset}"
            entry = {"dead_letter": letter.position, "replayed_to": replayed_to,
                     "replayed_at": datetime.now(UTC).isoformat(), "by": by}
            await producer.send_and_wait(journal_topic(dead_letter_topic), json.dumps(entry).encode(),
                                         key=str(letter.source_position).encode())
            sent_to[str(letter.source_position)] = replayed_to
            if on_progress:
                on_progress(done, len(letters))
    finally:
        await producer.stop()
    return sent_to
