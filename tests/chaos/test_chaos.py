"""Faults while the clinic books: nothing lost, no text sent twice, an email twice only when its
dispatcher died mid-send (counted), every bad record dead-lettered.

Size: CHAOS_SCALE=short (the suite's default), medium or long (tests/chaos/harness.py SCALES):
    CHAOS_SCALE=long bash deploy/test.sh tests/chaos -m chaos
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from shared.kafka_admin import ensure_topics
from shared.topics import APPOINTMENTS, APPOINTMENTS_DEAD_LETTER
from tests.chaos.harness import (
    Answer,
    ChaosSystem,
    Expectations,
    Killer,
    ResendCount,
    Scale,
    book_many,
    change,
    contact,
    in_days,
    query,
    run_async,
    sigkill_pid_file,
    tally,
    wait_for_all,
    wait_for_no_lag,
    wait_settled,
)
from tests.chaos.report import ScenarioFigures
from tests.conftest import create_postgres_database
from tests.support.kafka_server import KAFKA_SCRIPT, KafkaServer, free_port, result_value, run_script
from tests.support.postgres_server import PostgresServer, start_postgres

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.kafka]

StartSystem = Callable[..., ChaosSystem]
Record = Callable[[ScenarioFigures], None]


def some_day() -> datetime:
    return in_days(random.uniform(3, 20))


def groups_of(system: ChaosSystem) -> list[str]:
    return [system.env["NOTIFIER_GROUP_ID"], system.env["AFTERCARE_GROUP_ID"]]


def settle_and_count(system: ChaosSystem, expectations: Expectations, fault_end: float, timeout: float,
                     allowed: set[tuple[str, str, str]] | None = None) -> tuple[Any, float | None]:
    done = wait_for_all(system, expectations, timeout)
    wait_settled(system)
    counted = tally(expectations, expectations.arrivals(system), allowed or set())
    return counted, (None if done is None else max(0.0, done - fault_end))


def delivery_timeout(messages: int, base: float = 240.0) -> float:
    """How long to wait for every expected message: a floor, plus 5 messages/s at the least (the long
    form's tens of thousands of messages drain for minutes after the faults end)."""
    return base + messages / 5


def assert_delivered_once(counted: Any, resends: Counter[str]) -> None:
    assert counted.lost == [], f"{counted.lost_count} lost, e.g. {counted.lost[:5]}"
    assert counted.duplicated_sms == 0
    assert counted.duplicated_email <= resends["email"], (
        f"{counted.duplicated_email} duplicate emails, {resends['email']} resends with an unknown outcome")
    assert counted.unexpected == [], counted.unexpected[:5]


# 1 ---------------------------------------------------------------------------------------------


def test_sigkills_of_every_service_at_random_moments_lose_nothing_and_send_no_text_twice(
    kafka: KafkaServer, chaos_system: StartSystem, scale: Scale, record_figures: Record,
) -> None:
    system = chaos_system(kafka.bootstrap_servers)
    window = max(8.0, scale.bookings / 40)  # about as long as the bookings take
    killer = Killer(system, ("notifier", "aftercare", "booking_events"), scale.kills_each, window)
    killer.start()
    answers = book_many(system, 0, scale.bookings, starts_at=some_day)
    killer.join()
    fault_end = max(killer.last_restart, max(a.answered_at for a in answers.values()))
    expectations = Expectations()
    expectations.add_bookings(system, answers, 0)

    counted, recovery = settle_and_count(system, expectations, fault_end,
                                         timeout=delivery_timeout(len(expectations.expected)))
    resends = killer.resends.total(system.services["notifier"])
    retried = sum(1 for a in answers.values() if a.attempts > 1)
    record_figures(ScenarioFigures(
        "1 SIGKILL notifier, aftercare, booking_events", scale.bookings, counted.expected, counted.lost_count,
        counted.duplicated_email, counted.duplicated_sms, resends["email"] + resends["sms"], recovery_s=recovery,
        faults=f"{len(killer.kills)} SIGKILLs ({scale.kills_each} each); {retried} bookings retried by the client",
    ))
    assert_delivered_once(counted, resends)
    assert len(answers) == scale.bookings  # one appointment per Idempotency-Key, retries included
    assert wait_for_no_lag(kafka.bootstrap_servers, groups_of(system)) == dict.fromkeys(groups_of(system), 0)


# 2 ---------------------------------------------------------------------------------------------


def start_broker(data_dir: Path, port: int, controller_port: int, attempts: int = 2) -> str:
    """kafka.sh gives a broker 90 s to start; on a loaded machine a restart may need a second try."""
    for attempt in range(attempts):
        try:
            output = run_script(KAFKA_SCRIPT, "start", "--port", str(port), "--controller-port",
                                str(controller_port), "--data-dir", str(data_dir), timeout=300)
            return result_value(output, "bootstrap")
        except RuntimeError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def test_broker_killed_and_postgres_restarted_mid_run_the_services_resume_by_themselves(
    chaos_system: StartSystem, scale: Scale, record_figures: Record, chaos_dir: Path,
) -> None:
    kafka_dir, port, controller_port = chaos_dir / "kafka", free_port(), free_port()
    kafka_dir.mkdir()
    bootstrap = start_broker(kafka_dir, port, controller_port)
    postgres_port = free_port()
    postgres = start_postgres(chaos_dir / "postgres", postgres_port)
    try:
        run_async(ensure_topics(bootstrap))
        urls = [run_async(create_postgres_database(postgres)) for _ in range(3)]
        system = chaos_system(bootstrap, BOOKING_DATABASE_URL=urls[0], NOTIFIER_DATABASE_URL=urls[1],
                              AFTERCARE_DATABASE_URL=urls[2])
        answers: dict[str, Answer] = {}
        booking = threading.Thread(target=lambda: answers.update(
            book_many(system, 0, scale.bookings, starts_at=some_day, workers=4)))
        booking.start()
        time.sleep(3)
        sigkill_pid_file(kafka_dir / "kafka.pid")
        time.sleep(3)
        start_broker(kafka_dir, port, controller_port)
        time.sleep(3)
        postgres.stop()
        time.sleep(3)
        postgres = start_postgres(chaos_dir / "postgres", postgres_port)
        fault_end = time.time()
        booking.join(timeout=max(600.0, scale.bookings * 0.3))  # the long form's 10,000 take a quarter of an hour
        assert len(answers) == scale.bookings

        expectations = Expectations()
        expectations.add_bookings(system, answers, 0)
        counted, recovery = settle_and_count(system, expectations, fault_end,
                                             timeout=delivery_timeout(len(expectations.expected)))
        resends = ResendCount().total(system.services["notifier"])
        record_figures(ScenarioFigures(
            "2 broker SIGKILL + PostgreSQL restart", scale.bookings, counted.expected, counted.lost_count,
            counted.duplicated_email, counted.duplicated_sms, resends["email"] + resends["sms"],
            recovery_s=recovery, faults="broker down ~3 s (SIGKILL), PostgreSQL down ~3 s (fast shutdown)",
        ))
        assert_delivered_once(counted, resends)
        assert wait_for_no_lag(bootstrap, groups_of(system)) == dict.fromkeys(groups_of(system), 0)
    finally:
        postgres.stop()
        run_script(KAFKA_SCRIPT, "stop", "--data-dir", str(kafka_dir), timeout=60)


# 3 ---------------------------------------------------------------------------------------------


def test_smtp_down_twilio_storms_and_refused_credentials_then_everything_delivered_once(
    kafka: KafkaServer, chaos_system: StartSystem, scale: Scale, record_figures: Record,
) -> None:
    system = chaos_system(kafka.bootstrap_servers, RETRY_MAX_DELAY_SECONDS=str(scale.retry_max_delay_s))
    began = time.monotonic()
    system.sink.stop()
    system.twilio.inject_fault(20503, times=None, seconds=scale.storm_s)
    answers = book_many(system, 0, scale.fault_bookings, starts_at=some_day)
    time.sleep(max(0.0, began + scale.storm_s - time.monotonic()))
    system.twilio.inject_fault(20429, times=None, seconds=scale.storm_s)
    time.sleep(scale.storm_s)
    system.twilio.inject_fault(20003, kind="account")
    time.sleep(scale.storm_s)
    system.twilio.clear_faults()
    time.sleep(max(0.0, began + scale.smtp_outage_s - time.monotonic()))
    system.sink.start()
    fault_end = time.time()

    expectations = Expectations()
    expectations.add_bookings(system, answers, 0)
    counted, recovery = settle_and_count(system, expectations, fault_end, timeout=delivery_timeout(
        len(expectations.expected), base=120 + 2 * scale.retry_max_delay_s))
    resends = ResendCount().total(system.services["notifier"])
    record_figures(ScenarioFigures(
        "3 SMTP down, Twilio 5xx/429 storms, 20003", scale.fault_bookings, counted.expected, counted.lost_count,
        counted.duplicated_email, counted.duplicated_sms, resends["email"] + resends["sms"], recovery_s=recovery,
        faults=f"SMTP down {scale.smtp_outage_s:.0f} s; 20503 then 20429 storms then 20003, {scale.storm_s:.0f} s "
               f"each; retry cap {scale.retry_max_delay_s:.0f} s",
    ))
    assert_delivered_once(counted, resends)


# 4 ---------------------------------------------------------------------------------------------

CHANGE_TOLERANCE_S = 2.0  # the notifier's own transaction applying the change (a batch of events)


RACING_WAVE = 20  # appointments of each group booked at a time
RACING_WAVE_EVERY_S = 20.0  # about 4 bookings/s: each wave's messages go out before the next wave's are due


def test_cancel_reschedule_and_stop_racing_the_dispatch_send_nothing_after_they_are_applied(
    kafka: KafkaServer, chaos_system: StartSystem, scale: Scale, record_figures: Record,
) -> None:
    """Physiotherapy bookings start 110 s ahead: their reminder falls due 10 s after booking, while
    a cancellation, a reschedule (two days later) or a STOP arrives 4-16 s after booking."""
    system = chaos_system(kafka.bootstrap_servers)
    n = scale.racing
    soon = lambda: datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=110)  # noqa: E731
    changed_at: dict[str, Answer] = {}
    stop_sent_at: dict[str, float] = {}
    group_of: dict[str, str] = {}
    index: dict[str, int] = {}

    def act(appointment_id: str, at: float) -> None:
        time.sleep(max(0.0, at - time.time()))
        if group_of[appointment_id] == "cancelled":
            changed_at[appointment_id] = change(system, appointment_id, "cancel", {"cancelled_by": "patient"})
        elif group_of[appointment_id] == "moved":
            changed_at[appointment_id] = change(system, appointment_id, "reschedule",
                                                {"starts_at": in_days(2).isoformat()})
        else:
            stop_sent_at[appointment_id] = time.time()
            # The sandbox records the opt-out before it calls aftercare's webhook: a slow webhook
            # under load delays the answer, not the STOP.
            with contextlib.suppress(httpx.TimeoutException):
                system.twilio.text_in(contact(system.run, index[appointment_id]).phone, "STOP")

    # Booked in waves, each wave's changes made while the next one books: every change comes 4-16 s
    # after its own booking, racing that booking's reminder, however many bookings there are in all.
    # The waves are paced: the scenario is a race between a change and a dispatch, not a test of how
    # much the machine can take (a STOP waits for aftercare's webhook: the pool has room for them).
    answers: dict[str, Answer] = {}
    with ThreadPoolExecutor(32) as acting:
        acts = []
        began = time.time()
        for wave_number, first in enumerate(range(0, n, RACING_WAVE)):
            time.sleep(max(0.0, began + wave_number * RACING_WAVE_EVERY_S - time.time()))
            size = min(RACING_WAVE, n - first)
            timed = []
            for offset, group in enumerate(("control", "cancelled", "moved", "stopped")):
                wave = book_many(system, offset * n + first, size, starts_at=soon, appointment_type="physiotherapy")
                for k, (appointment_id, answer) in enumerate(wave.items()):  # in the order booked
                    group_of[appointment_id] = group
                    index[appointment_id] = offset * n + first + k
                    if group != "control":
                        timed.append((answer.answered_at + random.uniform(4, 16), appointment_id))
                answers |= wave
            acts += [acting.submit(act, appointment_id, at) for at, appointment_id in sorted(timed)]
        for done in acts:
            done.result()
    change_delays = sorted(changed_at[i].answered_at - answers[i].answered_at for i in changed_at)
    ids = sorted(answers, key=index.__getitem__)
    control, cancelled, moved = ({i for i in ids if group_of[i] == g} for g in ("control", "cancelled", "moved"))
    fault_end = time.time()

    expectations, allowed = Expectations(), set()
    for appointment_id in ids:
        person = contact(system.run, index[appointment_id])
        if appointment_id in control:
            must = [("confirmation", "email"), ("confirmation", "sms"), ("reminder", "sms")]
            may: list[tuple[str, str]] = []
        elif appointment_id in cancelled:
            must = [("cancellation_notice", "email"), ("cancellation_notice", "sms")]
            may = [("confirmation", "email"), ("confirmation", "sms"), ("reminder", "sms")]
        elif appointment_id in moved:
            must = [("reschedule_notice", "email"), ("reschedule_notice", "sms")]
            may = [("confirmation", "email"), ("confirmation", "sms"), ("reminder", "sms")]
        else:
            must = [("confirmation", "email")]
            may = [("confirmation", "sms"), ("reminder", "sms")]
        expectations.add(appointment_id, person, must)
        allowed |= {(appointment_id, template, channel) for template, channel in may}
    counted, recovery = settle_and_count(system, expectations, fault_end,
                                         timeout=delivery_timeout(len(expectations.expected), 120), allowed=allowed)
    arrivals = expectations.arrivals(system)

    # The strict reading: sent after the change was committed by the booking API (its answer came later).
    notices = {"cancellation_notice", "reschedule_notice"}
    after_commit = [a for a in arrivals if a.appointment_id in changed_at and a.template not in notices
                    and a.at > changed_at[a.appointment_id].answered_at]
    # What the notifier guarantees: no send begins once it has applied the change.
    url = system.notifier_database_urls[0]
    applied = {row["appointment_id"]: row["updated_at"] for row in query(
        url, "SELECT appointment_id, updated_at FROM appointments WHERE status = 'cancelled' "
             "OR last_sequence > 1")}
    begun = query(url, "SELECT appointment_id, template, attempt_started_at FROM deliveries WHERE status = 'sent' "
                       "AND template IN ('confirmation', 'reminder')")
    lateness = [(_utc(row["attempt_started_at"]) - _utc(applied[row["appointment_id"]])).total_seconds()
                for row in begun if row["appointment_id"] in changed_at]
    after_applied = [late for late in lateness if late > CHANGE_TOLERANCE_S]
    # After the STOP reached Twilio (the sandbox's own clock, as for the texts): under load the request
    # carrying it can wait seconds after the test sent it, and a text sent meanwhile is not a violation.
    stops_received = {m["from"]: float(m["sandbox_received_at"]) for m in system.twilio.messages(received=True)
                      if m["body"] == "STOP"}
    stop_received_at = {appointment_id: stops_received[contact(system.run, index[appointment_id]).phone]
                        for appointment_id in stop_sent_at}
    after_stop = [a for a in arrivals if a.channel == "sms" and a.appointment_id in stop_received_at
                  and a.at > stop_received_at[a.appointment_id]]
    old_reminders = [a for a in after_commit if a.template == "reminder" and a.appointment_id in moved]
    record_figures(ScenarioFigures(
        "4 cancel/reschedule/STOP racing dispatch", 4 * n + 3 * n, counted.expected, counted.lost_count,
        counted.duplicated_email, counted.duplicated_sms, 0, recovery_s=recovery,
        faults=f"{n} cancelled, {n} rescheduled, {n} STOPs, {n} untouched; sent after the change's commit "
               f"while its event was in transit: {len(after_commit)} (old-time reminders among them: "
               f"{len(old_reminders)}); sends begun after the notifier applied it: {len(after_applied)}; "
               f"texts after a STOP: {len(after_stop)}",
        extra={"latest_start_after_applied_s": max(lateness, default=None),
               "change_after_booking_s": {"median": change_delays[len(change_delays) // 2],
                                          "max": change_delays[-1]}},
    ))
    assert after_applied == [], f"sends begun {after_applied} s after the notifier applied the change"
    assert after_stop == [], after_stop
    assert_delivered_once(counted, Counter())


def _utc(moment: datetime | str) -> datetime:
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# 5 ---------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_two_notifiers_on_postgresql_with_slow_smtp_send_each_message_once(
    kafka: KafkaServer, postgres: PostgresServer, chaos_system: StartSystem, scale: Scale, record_figures: Record,
) -> None:
    url = run_async(create_postgres_database(postgres))
    system = chaos_system(kafka.bootstrap_servers, notifiers=2, NOTIFIER_DATABASE_URL=url)
    system.sink.set_delay(1.0)
    began = time.time()
    answers = book_many(system, 0, scale.two_instances, starts_at=some_day)
    expectations = Expectations()
    expectations.add_bookings(system, answers, 0)
    counted, _ = settle_and_count(system, expectations, began, timeout=60 + scale.two_instances * 2 / 8)
    sent_by = [p.log_path.read_text().count('"message_sent"') for p in system.services["notifier"]]
    record_figures(ScenarioFigures(
        "5 two notifiers on PostgreSQL, SMTP 1 s", scale.two_instances, counted.expected, counted.lost_count,
        counted.duplicated_email, counted.duplicated_sms, 0,
        faults=f"1 s per SMTP message; sent by instance: {sent_by}",
    ))
    assert_delivered_once(counted, Counter())
    assert counted.duplicated_email == 0
    assert all(count > 0 for count in sent_by), sent_by


# 6 ---------------------------------------------------------------------------------------------

MALFORMED_KINDS = ("bad_json", "event_type_not_utf8", "header_without_value", "oversized", "missing_key",
                   "wrong_schema", "unknown_type")


def malformed(kind: str, n: int) -> tuple[bytes | None, bytes, list[tuple[str, bytes | None]]]:
    key = f"apt-malformed-{n}".encode()
    headers: list[tuple[str, bytes | None]] = [("event_type", b"AppointmentBooked"), ("schema_version", b"1"),
                                               ("event_id", f"00000000-0000-4000-8000-{n:012d}".encode())]
    value = json.dumps({"event_type": "AppointmentBooked", "appointment_id": key.decode(), "sequence": 1}).encode()
    if kind == "bad_json":
        return key, b'{"event_type": "AppointmentBooked", ', headers
    if kind == "event_type_not_utf8":
        return key, value, [("event_type", b"\xff\xfe"), *headers[1:]]
    if kind == "header_without_value":
        return key, value, [("event_type", None), *headers[1:]]
    if kind == "oversized":
        return key, json.dumps({"event_type": "AppointmentBooked", "padding": "x" * 270_000}).encode(), headers
    if kind == "missing_key":
        return None, value, headers
    if kind == "wrong_schema":
        return key, json.dumps({"appointment": {"starts_at": "tomorrow"}, "sequence": "first"}).encode(), headers
    return key, json.dumps({"event_type": "AppointmentTeleported", "appointment_id": key.decode()}).encode(), [
        ("event_type", b"AppointmentTeleported"), *headers[1:]]


async def produce_malformed(bootstrap: str, count: int) -> dict[tuple[int, int], str]:
    """Each record's (partition, offset) and kind."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, max_request_size=1_048_576)
    await producer.start()
    try:
        pending = []
        for n in range(count):
            kind = MALFORMED_KINDS[n % len(MALFORMED_KINDS)]
            key, value, headers = malformed(kind, n)
            pending.append((kind, await producer.send(APPOINTMENTS, value=value, key=key, headers=headers,
                                                      partition=n % 6)))
        return {(m.partition, m.offset): kind for kind, future in pending for m in [await future]}
    finally:
        await producer.stop()


async def dead_letters(bootstrap: str, groups: list[str], expected: int, timeout: float) -> list[dict[str, str]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=4 << 20, fetch_max_bytes=16 << 20)
    await consumer.start()
    try:
        partitions = [TopicPartition(APPOINTMENTS_DEAD_LETTER, p)
                      for p in consumer.partitions_for_topic(APPOINTMENTS_DEAD_LETTER) or {0}]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[dict[str, str]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and len(found) < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for records in batch.values():
                for record in records:
                    headers = {name: (value or b"").decode(errors="replace") for name, value in record.headers}
                    if headers.get("dlq-consumer-group") in groups:
                        found.append(headers)
        return found
    finally:
        await consumer.stop()


def test_malformed_records_of_every_kind_are_all_dead_lettered_with_a_reason_and_lag_returns_to_zero(
    kafka: KafkaServer, chaos_system: StartSystem, scale: Scale, record_figures: Record,
) -> None:
    system = chaos_system(kafka.bootstrap_servers)
    groups = groups_of(system)
    began = time.time()
    produced = run_async(produce_malformed(kafka.bootstrap_servers, scale.malformed))
    answers = book_many(system, 0, 20, starts_at=some_day)  # behind the bad records, on every partition
    # Returns once every record is dead-lettered by both groups; the wait covers a group that, on a
    # loaded machine, loses its partitions mid-batch and reads them again after the rebalance.
    letters = run_async(dead_letters(kafka.bootstrap_servers, groups, 2 * len(produced),
                                     timeout=300 + len(produced) / 50))
    lags = wait_for_no_lag(kafka.bootstrap_servers, groups)
    lag_zero_after = time.time() - began

    by_group = {group: Counter((int(h["dlq-source-partition"]), int(h["dlq-source-offset"])) for h in letters
                               if h["dlq-consumer-group"] == group and h["dlq-source-topic"] == APPOINTMENTS)
                for group in groups}
    missing = {group: sorted(set(produced) - set(seen))[:5] for group, seen in by_group.items()}
    twice = {group: sum(1 for n in seen.values() if n > 1) for group, seen in by_group.items()}
    reasons = Counter((produced.get((int(h["dlq-source-partition"]), int(h["dlq-source-offset"]))), h["dlq-reason"])
                      for h in letters)
    expectations = Expectations()
    expectations.add_bookings(system, answers, 0)
    counted, _ = settle_and_count(system, expectations, began, timeout=60)
    lettered = min(len(set(seen) & set(produced)) for seen in by_group.values())
    record_figures(ScenarioFigures(
        "6 malformed records", len(produced), counted.expected, counted.lost_count,
        counted.duplicated_email, counted.duplicated_sms, 0,
        dead_lettered=f"{100 * lettered / len(produced):.1f}% ({lettered}/{len(produced)} per group)",
        recovery_s=lag_zero_after,
        faults=f"{len(MALFORMED_KINDS)} kinds: {', '.join(MALFORMED_KINDS)}; recovery = lag 0 for both groups",
        extra={"reasons": {f"{kind}:{reason}": n for (kind, reason), n in reasons.items()}},
    ))
    assert all(not gaps for gaps in missing.values()), f"not dead-lettered: {missing}"
    assert twice == dict.fromkeys(groups, 0), twice
    assert all(h["dlq-reason"] and h["dlq-detail"] for h in letters)
    assert lags == dict.fromkeys(groups, 0), lags
    assert_delivered_once(counted, Counter())
