"""CPU per message of the notifier's dispatcher, and its rate next to raw aiosmtplib's in the same run.

The notifier is built by its own `bootstrap.build` on a fresh SQLite database (its migrations applied),
its ledger filled the way production fills it: N bookings, each of a patient of their own, applied by
the notifier's event handler in batches of 500, which records each booking's confirmation (email, with
its calendar file; SMS too when the patient agreed to it) due now, and the later guidance and reminders.
The dispatcher (`Dispatcher.run`, as deployed, with the notifier's outcomes: each outcome's event goes
to the outbox) then runs until every confirmation is final. Cases:

- memory: email only, to an in-memory provider that writes each message as the SMTP sender would
  (`encode_message`) and returns at once: the dispatcher's own CPU, without a network;
- memory-mixed: email and SMS confirmations, both to in-memory providers;
- smtp: email only, the notifier's own SMTP sender (built from its settings) to the project's SMTP sink
  in a process of its own, on each number of connections of --connections; raw aiosmtplib sends the
  same confirmation (written once beforehand) to the same sink on as many connections in the same
  run, and both rates are read from the sink's own timestamps; the raw client's CPU per message is
  printed too.
- sms: SMS only (the patients agreed to texts alone), the notifier's own Twilio sender (built from its
  settings: 8 sends in flight, its rate set far above what the sandbox takes) to the Twilio sandbox in a
  process of its own; twilio's async client sends as many texts with as many in flight to the same
  sandbox in the same run (`bench.channels.raw_twilio`), both rates read from the sandbox's own
  timestamps, the raw client's CPU per message printed too.

It prints the process's CPU per message (the main thread and the database's threads), the main
thread's alone, the rate, how many were sent and how many recipients got more than one; it asserts
nothing. Logs go to a file, as deployed (JSON, INFO).

    .venv/bin/python -m bench.dispatch_cpu [--messages 2000] [--cases memory,memory-mixed,smtp,sms]
                                           [--connections 1,4] [--profile DIR]

With --profile, each case also writes a cProfile of the main thread while it dispatches
(`DIR/<case>.prof`).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import uvloop
from sqlalchemy import func, select

from bench.channels import SMS_CONCURRENCY, raw_smtp, raw_twilio
from bench.harness.stack import SENDER, SandboxProcess, SinkProcess, Stack
from bench.ingest_cpu import _common
from services.notifier import bootstrap as notifier
from services.notifier import migrations as notifier_migrations
from services.notifier.bootstrap import NotifierParts
from services.notifier.settings import NotifierSettings
from shared.channels.email import encode_message
from shared.channels.messages import EmailMessage, SmsMessage
from shared.events.patient import ChannelConsent
from shared.ledger.model import DeliveryStatus
from shared.ledger.tables import deliveries
from shared.observability import configure_logging
from shared.schema_migrations import upgrade_to_head
from shared.settings import SmtpSettings, TwilioSettings
from tests.support.channels import ACCOUNT_SID, AUTH_TOKEN, CLINIC_NUMBER
from tests.support.events import booked, patient

CASES = ("memory", "memory-mixed", "smtp", "sms")
# The sms case's sender rate: far above what the sandbox takes, so that the dispatcher's own pace shows.
SMS_RATE = 10_000.0
BOOKINGS_PER_BATCH = 500
STEP = "confirmation"
# Confirmations by SMS wait out quiet hours in the patient's zone: the patients live where it is day now.
ZONES = ("America/Toronto", "America/Vancouver", "America/Halifax", "Europe/Paris", "Asia/Tokyo",
         "Australia/Sydney", "Pacific/Honolulu")


def _daytime_zone() -> str:
    now = datetime.now(UTC)
    return next((zone for zone in ZONES if 9 <= now.astimezone(ZoneInfo(zone)).hour < 20), ZONES[0])


@dataclass
class InMemoryProvider:
    """Answers each send at once; an email is first written as the SMTP sender writes it."""

    sent: Counter[str] = field(default_factory=Counter)
    expected: int = 0
    all_sent: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, message: EmailMessage | SmsMessage) -> str:
        provider_id = f"SM{uuid.uuid4().hex}"
        if isinstance(message, EmailMessage):
            provider_id = encode_message(message, SENDER, "clinic.example").message_id
        self.sent[message.to] += 1
        if sum(self.sent.values()) >= self.expected:
            self.all_sent.set()
        return provider_id


async def _fill(parts: NotifierParts, count: int, sms: bool, email: bool = True) -> dict[str, str]:
    """`count` bookings applied by the notifier's handler; the confirmations due now, id -> recipient."""
    run, zone = uuid.uuid4().hex[:8], _daytime_zone()
    starts = datetime.now(UTC) + timedelta(days=3)
    consent = ChannelConsent(email=email, sms=sms)
    for first in range(0, count, BOOKINGS_PER_BATCH):
        await parts.handler.handle_batch([
            booked(f"apt-{run}-{n}", starts + timedelta(minutes=n % 600), who=patient(
                patient_id=f"pt-{run}-{n}", email=f"patient{n}.{run}@example.com",
                phone=f"+1416{5_550_000 + n:07d}", time_zone=zone, consent=consent))
            for n in range(first, min(count, first + BOOKINGS_PER_BATCH))
        ])
    async with parts.engine.connect() as connection:
        rows = await connection.execute(
            select(deliveries.c.id, deliveries.c.recipient)
            .where(deliveries.c.step == STEP, deliveries.c.due_at <= datetime.now(UTC)))
        return {row.id: row.recipient for row in rows}


async def _unfinished(parts: NotifierParts) -> int:
    async with parts.engine.connect() as connection:
        return int(await connection.scalar(
            select(func.count()).where(deliveries.c.step == STEP, deliveries.c.status.in_(
                [DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value]))) or 0)


async def _outcomes(parts: NotifierParts) -> Counter[str]:
    async with parts.engine.connect() as connection:
        rows = await connection.execute(
            select(deliveries.c.status, func.count()).where(deliveries.c.step == STEP).group_by(deliveries.c.status))
        return Counter({row[0]: row[1] for row in rows})


async def _until_sent(parts: NotifierParts, nearly_done: Any) -> None:
    """Until no confirmation is pending or sending; the ledger is asked only once `nearly_done()`."""
    while True:
        if await nearly_done() and await _unfinished(parts) == 0:
            return
        await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Measure:
    case: str
    connections: int | None
    sent: int
    due: int
    sent_twice: int
    cpu: float
    main_thread: float
    wall: float
    rate: float
    raw_rate: float | None = None
    raw_cpu: float | None = None


async def _dispatch(parts: NotifierParts, case: str, nearly_done: Any,
                    profile: Path | None) -> tuple[float, float, float, float]:
    """Runs the dispatcher until every confirmation is final: CPU (process, main thread), wall, start (epoch)."""
    stop = asyncio.Event()
    profiler = cProfile.Profile() if profile else None
    started_at = time.time()
    cpu, main_thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
    with profiler if profiler else contextlib.nullcontext():
        running = asyncio.create_task(parts.dispatcher.run(stop))
        try:
            await _until_sent(parts, nearly_done)
        finally:
            stop.set()
            parts.dispatcher.wake()
            await running
    cpu, main_thread, wall = (time.process_time() - cpu, time.thread_time() - main_thread,
                              time.perf_counter() - wall)
    if profiler and profile:
        profile.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(profile / f"{case}.prof")
    return cpu, main_thread, wall, started_at


def _settings(folder: str, smtp: SmtpSettings | None = None, twilio: TwilioSettings | None = None
              ) -> NotifierSettings:
    values = _common(f"sqlite+aiosqlite:///{folder}/notifier.db")
    if smtp is not None:
        values["delivery"] = values["delivery"].model_copy(update={"smtp": smtp})
    if twilio is not None:
        values["delivery"] = values["delivery"].model_copy(update={"twilio": twilio})
    return NotifierSettings(**values)


async def _built(settings: NotifierSettings, **channels: Any) -> NotifierParts:
    parts = notifier.build(settings, **channels)
    await upgrade_to_head(parts.engine, notifier_migrations.MIGRATIONS)
    return parts


async def in_memory(case: str, count: int, profile: Path | None) -> Measure:
    mixed = case == "memory-mixed"
    provider = InMemoryProvider()
    folder = tempfile.mkdtemp(prefix="bench-dispatch-cpu-")
    parts = await _built(_settings(folder), email=provider, sms=provider)
    try:
        due = await _fill(parts, count, sms=mixed)
        provider.expected = len(due)

        async def nearly_done() -> bool:
            return provider.all_sent.is_set()

        cpu, main_thread, wall, _ = await _dispatch(parts, case, nearly_done, profile)
        outcomes = await _outcomes(parts)
    finally:
        await notifier.close(parts)
        shutil.rmtree(folder, ignore_errors=True)
    twice = sum(1 for times in provider.sent.values() if times > 1)
    return Measure(case, None, outcomes[DeliveryStatus.SENT.value], len(due), twice, cpu, main_thread, wall,
                   len(due) / wall)


def _rate(stamps: list[float], started: float) -> float:
    return len(stamps) / (max(stamps) - started) if stamps and max(stamps) > started else float("nan")


async def over_smtp(sink: SinkProcess, connections: int, count: int, profile: Path | None) -> Measure:
    smtp = SmtpSettings(host="127.0.0.1", port=sink.port, sender=SENDER, pool_size=connections)
    folder = tempfile.mkdtemp(prefix="bench-dispatch-cpu-")
    parts = await _built(_settings(folder, smtp))
    try:
        due = await _fill(parts, count, sms=False)
        # The raw client's mail: one of these confirmations, as the notifier writes it.
        one = next(iter(due))
        async with parts.engine.connect() as connection:
            appointment_id = str(await connection.scalar(
                select(deliveries.c.appointment_id).where(deliveries.c.id == one)))
            rows = await parts.dispatcher.ledger.for_appointment(connection, appointment_id)
        [first] = [row for row in rows if row.id == one]
        composed = parts.dispatcher.composer.email(first, datetime.now(UTC))
        mail = encode_message(composed, SENDER, "clinic.example").data
        sink.forget()
        raw_cpu = time.process_time()
        raw_started = await raw_smtp(sink.port, connections, len(due), mail)
        raw_cpu = time.process_time() - raw_cpu
        raw = _rate([m["at"] for m in sink.mails()], raw_started)
        sink.forget()

        async def nearly_done() -> bool:
            return sink.record.read_bytes().count(b"\n") >= len(due)

        case = f"smtp-{connections}"
        cpu, main_thread, wall, started = await _dispatch(parts, case, nearly_done, profile)
        outcomes = await _outcomes(parts)
    finally:
        await notifier.close(parts)
        shutil.rmtree(folder, ignore_errors=True)
    received = Counter(to for m in sink.mails() for to in m["to"])
    twice = sum(1 for times in received.values() if times > 1)
    ours = _rate([m["at"] for m in sink.mails()], started)
    return Measure("smtp", connections, outcomes[DeliveryStatus.SENT.value], len(due), twice, cpu, main_thread,
                   wall, ours, raw, raw_cpu)


async def over_twilio(sandbox: SandboxProcess, count: int, profile: Path | None) -> Measure:
    twilio = TwilioSettings(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=CLINIC_NUMBER,
                            api_base_url=sandbox.url, messages_per_second=SMS_RATE, concurrency=SMS_CONCURRENCY)
    folder = tempfile.mkdtemp(prefix="bench-dispatch-cpu-")
    parts = await _built(_settings(folder, twilio=twilio))
    try:
        due = await _fill(parts, count, sms=True, email=False)
        sandbox.forget()
        raw_cpu = time.process_time()
        raw_started = await raw_twilio(sandbox.url, SMS_CONCURRENCY, len(due))
        raw_cpu = time.process_time() - raw_cpu
        raw = _rate([m["sandbox_received_at"] for m in sandbox.messages()], raw_started)
        sandbox.forget()

        async def nearly_done() -> bool:  # the ledger is asked every 50 ms: a count on its status index
            return True

        cpu, main_thread, wall, started = await _dispatch(parts, "sms", nearly_done, profile)
        outcomes = await _outcomes(parts)
    finally:
        await notifier.close(parts)
        shutil.rmtree(folder, ignore_errors=True)
    arrived = sandbox.messages()
    received = Counter(m["to"] for m in arrived)
    twice = sum(1 for times in received.values() if times > 1)
    ours = _rate([m["sandbox_received_at"] for m in arrived], started)
    return Measure("sms", SMS_CONCURRENCY, outcomes[DeliveryStatus.SENT.value], len(due), twice, cpu, main_thread,
                   wall, ours, raw, raw_cpu)


def _row(m: Measure) -> str:
    raw = (f"{m.raw_rate:,.0f} | {100 * m.rate / m.raw_rate:.0f}% | {1000 * (m.raw_cpu or 0) / m.due:.3f}"
           if m.raw_rate else "- | - | -")
    return (f"| {m.case} | {m.connections or '-'} | {m.sent:,} of {m.due:,} | {m.sent_twice} | "
            f"{1000 * m.cpu / m.due:.3f} | {1000 * m.main_thread / m.due:.3f} | {m.rate:,.0f} | {raw} | "
            f"{os.getloadavg()[0]:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="bookings per case (one confirmation each "
                                                                   "by email, and one by SMS in memory-mixed)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"some of {','.join(CASES)}")
    parser.add_argument("--connections", default="1,4", help="SMTP connections of the smtp case, e.g. 1,4")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of each case here")
    args = parser.parse_args()
    unknown = sorted(set(args.cases.split(",")) - set(CASES))
    if unknown:
        parser.error(f"unknown case {', '.join(unknown)}: use some of {','.join(CASES)}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-dispatch-cpu-log-"))
    stack = Stack(workdir)
    rows = []
    with (workdir / "services.log").open("w") as logs:
        sys.stderr = logs
        configure_logging("INFO", json=True)
        try:
            for case in args.cases.split(","):
                if case == "smtp":
                    sink = stack.start_sink("smtp-sink")
                    rows += [uvloop.run(over_smtp(sink, int(n), args.messages, args.profile))
                             for n in args.connections.split(",")]
                    stack.stop(sink)
                elif case == "sms":
                    sandbox = stack.start_sandbox("sms-sandbox")
                    rows.append(uvloop.run(over_twilio(sandbox, args.messages, args.profile)))
                    stack.stop(sandbox)
                else:
                    rows.append(uvloop.run(in_memory(case, args.messages, args.profile)))
        finally:
            stack.close()
            sys.stderr = sys.__stderr__
    print("| case | connections (SMTP) or sends in flight (SMS) | sent | recipients sent twice "
          "| CPU ms/message (process) | CPU ms/message (main thread) | messages/s | raw client messages/s "
          "| of raw | raw client CPU ms/message | load average |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(_row(m) for m in rows))
    print(f"\nservice logs: {workdir / 'services.log'}")


if __name__ == "__main__":
    main()
