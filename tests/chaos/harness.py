"""The system under faults, and every message it sent counted per appointment, template and channel.

- Each scenario runs its own system: the three services as processes on fresh databases and consumer
  groups, an SMTP sink and a Twilio sandbox of its own, on the session's broker (or its own broker
  when it kills it).
- Bookings go through the booking API like an integrator's: a request that got no answer (booking
  killed, 5xx, 429) is sent again with the same Idempotency-Key until it is answered.
- Each booking has its own email address and phone, so every mail in the sink and every text in the
  sandbox's list names its appointment; the template is read from the subject or the text.
- lost = expected (appointment, template, channel) never received; duplicated = received more than once.
"""
from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from sandbox.smtp_sink import SmtpSink
from shared.ledger.model import OPEN_STATUSES
from shared.ledger.tables import deliveries
from shared.topics import APPOINTMENTS
from tests.support.channels import ACCOUNT_SID, AUTH_TOKEN, CLINIC_NUMBER, TwilioSandbox, start_twilio_sandbox
from tests.support.kafka_server import free_port
from tests.support.processes import ServiceProcess, wait_for_http

CHAOS_CLINIC = Path(__file__).parent / "clinic-chaos.yaml"
API_KEY = "chaos-booking-key"
SERVICES = ("booking_events", "notifier", "aftercare")
# Area codes whose 555 exchange phonenumbers accepts; the clinic's own numbers are in 416.
AREA_CODES = ("647", "437", "905", "289", "226", "519")


@dataclass(frozen=True)
class Scale:
    name: str
    bookings: int  # scenario 1 and 2
    kills_each: int  # scenario 1: SIGKILLs of each service
    smtp_outage_s: float  # scenario 3
    retry_max_delay_s: float  # scenario 3: the dispatcher's backoff cap during the outage
    storm_s: float  # scenario 3: each Twilio storm
    fault_bookings: int  # scenario 3
    racing: int  # scenario 4: appointments in each racing group
    two_instances: int  # scenario 5
    malformed: int  # scenario 6


SCALES = {
    "short": Scale("short", bookings=300, kills_each=1, smtp_outage_s=15, retry_max_delay_s=3, storm_s=6,
                   fault_bookings=200, racing=40, two_instances=150, malformed=1000),
    "medium": Scale("medium", bookings=2000, kills_each=3, smtp_outage_s=120, retry_max_delay_s=20, storm_s=20,
                    fault_bookings=1000, racing=150, two_instances=600, malformed=5000),
    "long": Scale("long", bookings=10_000, kills_each=5, smtp_outage_s=900, retry_max_delay_s=60, storm_s=60,
                  fault_bookings=2000, racing=300, two_instances=2000, malformed=10_000),
}


def current_scale() -> Scale:
    name = os.environ.get("CHAOS_SCALE", "short")
    if name not in SCALES:
        raise ValueError(f"CHAOS_SCALE={name!r}: use one of {sorted(SCALES)}")
    return SCALES[name]


# --- the system ---


@dataclass(frozen=True)
class Contact:
    email: str
    phone: str
    patient_id: str

    def patient(self, sms: bool = True, email: bool = True) -> dict[str, Any]:
        return {"patient_id": self.patient_id, "name": "Alex Tremblay", "email": self.email, "phone": self.phone,
                "locale": "en-CA", "time_zone": "America/Toronto", "consent": {"email": email, "sms": sms}}


# Systems of one session share the broker and its topics, and a new system's consumer groups read
# them from the start: each system books on area codes of its own, so an earlier system's patients
# are never counted as this one's.
_SYSTEM_ORDINALS: dict[str, int] = {}


def contact(run: str, index: int) -> Contact:
    area = AREA_CODES[(_SYSTEM_ORDINALS.get(run, 0) + index // 10_000) % len(AREA_CODES)]
    return Contact(f"chaos.{run}.{index}@example.com", f"+1{area}555{index % 10_000:04d}", f"pt-{run}-{index}")


@dataclass
class ChaosSystem:
    env: dict[str, str]
    services: dict[str, list[ServiceProcess]]
    sink: SmtpSink
    twilio: TwilioSandbox
    tmp: Path
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    def __post_init__(self) -> None:
        _SYSTEM_ORDINALS[self.run] = len(_SYSTEM_ORDINALS)

    @property
    def booking_url(self) -> str:
        return f"http://127.0.0.1:{self.env['BOOKING_HTTP_PORT']}"

    @property
    def notifier_database_urls(self) -> list[str]:
        return sorted({process.env["NOTIFIER_DATABASE_URL"] for process in self.services["notifier"]})

    def process(self, name: str) -> ServiceProcess:
        return self.services[name][0]

    def stop(self) -> None:
        for processes in self.services.values():
            for process in processes:
                process.stop()
        self.twilio.server.stop()
        self.sink.stop()

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(f"--- {process.name} ---\n{process.log_tail(lines)}"
                         for processes in self.services.values() for process in processes)


def chaos_env(bootstrap: str, sink: SmtpSink, twilio: TwilioSandbox, tmp: Path, aftercare_port: int,
              **overrides: str) -> dict[str, str]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CLINIC_CONFIG_FILE": str(CHAOS_CLINIC),
        "LOG_JSON": "true",
        "LOG_LEVEL": "INFO",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(sink.port),
        "SMTP_SENDER": "Harbourfront Sports Medicine <no-reply@harbourfront-clinic.example>",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": CLINIC_NUMBER,
        "TWILIO_API_BASE_URL": twilio.url,
        "TWILIO_MESSAGES_PER_SECOND": "200",
        "PATIENT_WEB_URL": f"http://127.0.0.1:{aftercare_port}",
        "LINK_SECRET": "chaos-link-secret-of-at-least-32-bytes",
        "RETRY_FIRST_DELAY_SECONDS": "0.5",
        "RETRY_MAX_DELAY_SECONDS": "5",
        "BOOKING_API_KEYS": API_KEY,
        "BOOKING_RATE_LIMIT_PER_SECOND": "10000",
        "BOOKING_RATE_LIMIT_BURST": "10000",
        "BOOKING_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/booking.db",
        "BOOKING_HTTP_PORT": str(free_port()),
        "BOOKING_OUTBOX_POLL_INTERVAL_S": "0.2",
        "BOOKING_OUTBOX_MAX_BACKOFF_S": "2",
        "BOOKING_METRICS_PORT": str(free_port()),
        "NOTIFIER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/notifier.db",
        "NOTIFIER_METRICS_PORT": str(free_port()),
        "NOTIFIER_HTTP_PORT": str(free_port()),
        "NOTIFIER_GROUP_ID": f"notifier-chaos-{uuid.uuid4().hex[:6]}",
        "AFTERCARE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/aftercare.db",
        "AFTERCARE_HTTP_PORT": str(aftercare_port),
        "AFTERCARE_METRICS_PORT": str(free_port()),
        "AFTERCARE_GROUP_ID": f"aftercare-chaos-{uuid.uuid4().hex[:6]}",
        "AFTERCARE_WEBHOOK_REQUESTS_PER_MINUTE": "60000",
        "AFTERCARE_WEBHOOK_BURST": "10000",
    }
    return env | overrides


def start_system(bootstrap: str, tmp: Path, *, notifiers: int = 1, **overrides: str) -> ChaosSystem:
    aftercare_port = free_port()
    sink = SmtpSink()
    sink.start()
    twilio = start_twilio_sandbox(inbound_webhook_url=f"http://127.0.0.1:{aftercare_port}/twilio/inbound")
    env = chaos_env(bootstrap, sink, twilio, tmp, aftercare_port, **overrides)
    services: dict[str, list[ServiceProcess]] = {}
    for name in SERVICES:
        count = notifiers if name == "notifier" else 1
        services[name] = [
            ServiceProcess(f"{name}-{n}", f"services.{name}",
                           # Each notifier instance on ports of its own (metrics, health and status callbacks).
                           env | ({"NOTIFIER_METRICS_PORT": str(free_port()),
                                   "NOTIFIER_HTTP_PORT": str(free_port())} if n else {}),
                           tmp / f"{name}-{n}.log", f"{name}_started")
            for n in range(count)
        ]
    system = ChaosSystem(env, services, sink, twilio, tmp)
    try:
        for processes in services.values():
            for process in processes:
                process.start()
        wait_for_http(f"{system.booking_url}/healthz")
        wait_for_http(f"http://127.0.0.1:{aftercare_port}/healthz")
    except BaseException:
        system.stop()
        raise
    return system


# --- the integrator: answered requests only, retried with the same key ---


@dataclass(frozen=True)
class Answer:
    body: dict[str, Any]
    sent_at: float  # when the answered request was sent (epoch seconds)
    answered_at: float  # when its answer came: the change was committed before this
    attempts: int


def request_until_answered(client: httpx.Client, path: str, body: dict[str, Any], key: str,
                           expected: int, timeout: float = 300.0) -> Answer:
    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        attempts += 1
        sent_at = time.time()
        try:
            response = client.post(path, json=body, headers={"X-API-Key": API_KEY, "Idempotency-Key": key})
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code == expected:
            return Answer(response.json(), sent_at, time.time(), attempts)
        if response is not None and response.status_code not in (429, 500, 502, 503, 504):
            raise AssertionError(f"{path}: {response.status_code} {response.text[:300]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} not answered within {timeout}s")
        time.sleep(0.2)


def book_many(system: ChaosSystem, first: int, count: int, *, starts_at: Callable[[], datetime],
              appointment_type: str = "dry_needling", workers: int = 6) -> dict[str, Answer]:
    """Books contacts first..first+count-1; answers by appointment id."""
    def book(index: int) -> tuple[str, Answer]:
        person = contact(system.run, index)
        body = {"patient": person.patient(),
                "appointment": {"type": appointment_type, "starts_at": starts_at().isoformat(),
                                "duration_minutes": 30, "practitioner": "Sam Lee", "location_id": "downtown"}}
        with httpx.Client(base_url=system.booking_url, timeout=10) as client:
            answer = request_until_answered(client, "/v1/appointments", body, f"chaos-{system.run}-{index}", 201)
        return answer.body["appointment_id"], answer

    with ThreadPoolExecutor(workers) as pool:
        return dict(pool.map(book, range(first, first + count)))


def change(system: ChaosSystem, appointment_id: str, action: str, body: dict[str, Any]) -> Answer:
    with httpx.Client(base_url=system.booking_url, timeout=10) as client:
        return request_until_answered(client, f"/v1/appointments/{appointment_id}/{action}", body,
                                      f"chaos-{action}-{appointment_id}", 200)


def in_days(days: float) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


# --- what arrived ---

SMS_TEMPLATES = ((" is confirmed.", "confirmation"), (" reminder: ", "reminder"),
                 (" has been cancelled", "cancellation_notice"), ("appointment has moved to", "reschedule_notice"))
EMAIL_TEMPLATES = (("Reminder:", "reminder"), (" is confirmed", "confirmation"),
                   (" has been cancelled", "cancellation_notice"), ("has moved to", "reschedule_notice"))
CONTACT_PATTERN = re.compile(r"chaos\.(?P<run>[0-9a-f]+)\.(?P<index>\d+)@example\.com")


def _template(text_: str, table: tuple[tuple[str, str], ...]) -> str:
    return next((name for marker, name in table if marker in text_), "other")


@dataclass(frozen=True)
class Arrival:
    appointment_id: str
    template: str
    channel: str
    at: float  # when the provider received it (epoch seconds)
    ident: str  # Message-ID or SMS sid


@dataclass
class Expectations:
    """Who is who: each appointment's email and phone, and what it must receive."""

    by_email: dict[str, str] = field(default_factory=dict)
    by_phone: dict[str, str] = field(default_factory=dict)
    expected: set[tuple[str, str, str]] = field(default_factory=set)

    def add(self, appointment_id: str, person: Contact, templates: Iterable[tuple[str, str]]) -> None:
        self.by_email[person.email] = appointment_id
        self.by_phone[person.phone] = appointment_id
        self.expected |= {(appointment_id, template, channel) for template, channel in templates}

    def add_bookings(self, system: ChaosSystem, answers: dict[str, Answer], first: int) -> None:
        """Bookings made by book_many from index `first`, in order: each gets its confirmation on both channels."""
        for offset, appointment_id in enumerate(answers):
            self.add(appointment_id, contact(system.run, first + offset),
                     [("confirmation", "email"), ("confirmation", "sms")])

    def arrivals(self, system: ChaosSystem) -> list[Arrival]:
        found = []
        for mail in system.sink.messages:
            for recipient in mail.recipients:
                if recipient in self.by_email:
                    found.append(Arrival(self.by_email[recipient], _template(str(mail.message["Subject"]),
                                                                              EMAIL_TEMPLATES),
                                         "email", mail.received_at, str(mail.message["Message-ID"])))
        for message in system.twilio.messages():
            if message["to"] in self.by_phone and message["direction"] == "outbound-api":
                found.append(Arrival(self.by_phone[message["to"]], _template(message["body"], SMS_TEMPLATES),
                                     "sms", float(message["sandbox_received_at"]), message["sid"]))
        return found


@dataclass(frozen=True)
class Tally:
    expected: int
    lost: list[tuple[str, str, str]]
    duplicated_email: int
    duplicated_sms: int
    unexpected: list[tuple[str, str, str]]
    duplicate_email_ids: list[str]

    @property
    def lost_count(self) -> int:
        return len(self.lost)


def tally(expectations: Expectations, arrivals: list[Arrival], allowed: Iterable[tuple[str, str, str]] = ()) -> Tally:
    counts = Counter((a.appointment_id, a.template, a.channel) for a in arrivals)
    duplicates = {key: n - 1 for key, n in counts.items() if n > 1}
    email_ids = Counter(a.ident for a in arrivals if a.channel == "email")
    return Tally(
        expected=len(expectations.expected),
        lost=sorted(expectations.expected - set(counts)),
        duplicated_email=sum(n for key, n in duplicates.items() if key[2] == "email"),
        duplicated_sms=sum(n for key, n in duplicates.items() if key[2] == "sms"),
        unexpected=sorted(set(counts) - expectations.expected - set(allowed)),
        duplicate_email_ids=sorted(ident for ident, n in email_ids.items() if n > 1),
    )


def wait_for_all(system: ChaosSystem, expectations: Expectations, timeout: float) -> float | None:
    """The moment every expected message had arrived (epoch seconds), or None after `timeout`."""
    deadline = time.monotonic() + timeout
    # Each look reads every mail and text received: with thousands, look less often, so that the
    # sandbox spends its time on the notifier's sends rather than on listing them.
    pause = max(0.5, len(expectations.expected) / 2000)
    while time.monotonic() < deadline:
        try:
            got = {(a.appointment_id, a.template, a.channel) for a in expectations.arrivals(system)}
        except httpx.TransportError:  # the sandbox slow to list thousands under load: look again
            got = set()
        if expectations.expected <= got:
            return time.time()
        time.sleep(pause)
    return None


# --- the system's own records, to know when it has settled ---


def run_async(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def _open_deliveries(url: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            row = await connection.execute(
                select(func.count()).select_from(deliveries)
                .where(deliveries.c.status.in_(OPEN_STATUSES), deliveries.c.due_at <= datetime.now(UTC))
            )
            return int(row.scalar_one())
    finally:
        await engine.dispose()


def wait_settled(system: ChaosSystem, timeout: float = 180.0) -> None:
    """Until no notifier has a due message open (a send whose dispatcher died is open until its lease
    ends and it is taken up again): only then are duplicates final."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if sum(run_async(_open_deliveries(url)) for url in system.notifier_database_urls) == 0:
                time.sleep(1.0)  # the provider call of the last recorded send has answered before its record
                return
        except Exception:  # the database may be restarting
            pass
        time.sleep(1.0)
    raise AssertionError(f"notifier ledger still has open due messages after {timeout}s")


def query(url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                result = await connection.execute(text(sql), params)
                return [dict(row._mapping) for row in result]
        finally:
            await engine.dispose()

    rows: list[dict[str, Any]] = run_async(run())
    return rows


METRIC = re.compile(r'^clinic_notify_unknown_outcome_resends_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$', re.M)


def unknown_outcome_resends(process: ServiceProcess) -> dict[str, int]:
    """This notifier process's resends with an unknown outcome, by channel (0 when it is not running)."""
    try:
        page = httpx.get(f"http://127.0.0.1:{process.env['NOTIFIER_METRICS_PORT']}/metrics", timeout=2).text
    except httpx.HTTPError:
        return {}
    counts: dict[str, int] = {}
    for match in METRIC.finditer(page):
        channel = re.search(r'channel="(\w+)"', match["labels"])
        if channel:
            counts[channel[1]] = counts.get(channel[1], 0) + int(float(match["value"]))
    return counts


@dataclass
class ResendCount:
    """Unknown-outcome resends over processes that come and go: read before each kill and at the end."""

    by_channel: Counter[str] = field(default_factory=Counter)

    def read_before_kill(self, process: ServiceProcess) -> None:
        self.by_channel.update(unknown_outcome_resends(process))

    def total(self, processes: Iterable[ServiceProcess]) -> Counter[str]:
        final = Counter(self.by_channel)
        for process in processes:
            final.update(unknown_outcome_resends(process))
        return final


# --- SIGKILLs at random moments ---


@dataclass
class Killer:
    """Kills each named service `kills_each` times at random moments within `window` seconds, restarting it."""

    system: ChaosSystem
    names: tuple[str, ...]
    kills_each: int
    window: float
    resends: ResendCount = field(default_factory=ResendCount)
    kills: list[tuple[str, float]] = field(default_factory=list)
    last_restart: float = 0.0
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            began = time.monotonic()
            moments = sorted((random.uniform(0.5, self.window), name)
                             for name in self.names for _ in range(self.kills_each))
            for moment, name in moments:
                time.sleep(max(0.0, began + moment - time.monotonic()))
                process = self.system.process(name)
                if name == "notifier":
                    self.resends.read_before_kill(process)
                process.kill()
                self.kills.append((name, time.time()))
                time.sleep(random.uniform(0.2, 1.5))
                process.start()
                self.last_restart = time.time()
        except BaseException as error:
            self._error = error


def sigkill_pid_file(pid_file: Path) -> None:
    os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)


# --- Kafka: dead letters and lag ---


async def group_lag(bootstrap: str, group: str, topic: str = APPOINTMENTS) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer.topics()
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
        return sum(ends[tp] - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0)
                   for tp in partitions)
    finally:
        await consumer.stop()
        await admin.close()


def wait_for_no_lag(bootstrap: str, groups: Iterable[str], timeout: float = 120.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        lags = {group: run_async(group_lag(bootstrap, group)) for group in groups}
        if not any(lags.values()) or time.monotonic() > deadline:
            return lags
        time.sleep(1.0)
