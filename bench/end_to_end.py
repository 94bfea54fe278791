"""End to end: bookings POSTed at rising offered loads to the booking service, through the broker to the
notifier, out to the SMTP sink; every piece a process of its own. Latency is from the instant a POST
was due (open loop) to the sink accepting its confirmation email; lost and duplicated are counted per
booking accepted (201)."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

from bench.booking_api import API_KEY, start_booking
from bench.harness.databases import sqlite_url
from bench.harness.groups import start_groups_at_end
from bench.harness.load import offer, summarise
from bench.harness.stack import SandboxProcess, SinkProcess, Stack, channel_env
from bench.harness.stats import percentile
from shared.topics import APPOINTMENTS, CONSENT
from tests.support.kafka_server import free_port

# Offered loads (bookings/s), each sustained for the given seconds.
SIZES = {"quick": ((5, 10), 2.0), "medium": ((10, 25, 50, 100), 5.0), "full": ((10, 25, 50, 100, 200, 300), 60.0)}
ASSUMED_DRAIN_PER_S = 100.0  # messages/s: a load's wait for its confirmations grows with what it booked


def start_notifier(stack: Stack, sink: SinkProcess, database_url: str, name: str = "notifier",
                   group_id: str | None = None, extra: dict[str, str] | None = None,
                   sandbox: SandboxProcess | None = None) -> Any:
    sandbox = sandbox or stack.start_sandbox(f"{name}-sandbox")
    env = channel_env(sink, sandbox) | {
        "KAFKA_BOOTSTRAP_SERVERS": stack.ensure_kafka().bootstrap_servers,
        "NOTIFIER_DATABASE_URL": database_url, "NOTIFIER_METRICS_PORT": str(free_port()),
        "NOTIFIER_HTTP_PORT": str(free_port()),
        "NOTIFIER_GROUP_ID": group_id or f"notifier-{uuid.uuid4().hex[:6]}",
    } | (extra or {})
    return stack.service(name, "services.notifier", env, "notifier_started")


def _wait_for_mails(sink: SinkProcess, expected: set[str], timeout: float) -> dict[str, list[float]]:
    deadline = time.monotonic() + timeout
    while True:
        arrived: dict[str, list[float]] = defaultdict(list)
        for mail in sink.mails():
            for address in mail["to"]:
                if address in expected:
                    arrived[address].append(mail["at"])
        if len(arrived) >= len(expected) or time.monotonic() > deadline:
            return arrived
        time.sleep(0.5)


def warm_up(url: str, sink: SinkProcess, stack: Stack) -> None:
    """One booking through the whole path before measuring: the consumer group has joined, the topics
    exist, every connection is open."""
    tag = f"warm-{uuid.uuid4().hex[:4]}"
    recorded = offer(f"{url}/v1/appointments", 1, 1, stack.workdir / f"load-{tag}.json", booking_key=API_KEY, run=tag)
    expected = {f"{tag}-{n}@example.com" for n, _, _, status in recorded["requests"] if status == 201}
    if len(_wait_for_mails(sink, expected, 180.0)) < len(expected):
        raise RuntimeError("the warm-up booking's confirmation did not arrive within 180 s")


def run(stack: Stack, form: str) -> dict[str, Any]:
    loads, seconds = SIZES[form]
    drain_timeout = 60.0 if form == "quick" else 180.0
    sink = stack.start_sink("e2e-sink")
    group = f"notifier-{uuid.uuid4().hex[:6]}"
    # Bookings an earlier benchmark published stay in the topic: this notifier's groups start after them.
    asyncio.run(start_groups_at_end(stack.ensure_kafka().bootstrap_servers, {group: APPOINTMENTS,
                                                                             f"{group}.consent": CONSENT}))
    start_notifier(stack, sink, sqlite_url(stack.workdir, "notifier"), group_id=group)
    url, _ = start_booking(stack, sqlite_url(stack.workdir, "booking-e2e"), "booking-e2e")
    warm_up(url, sink, stack)
    rows: list[dict[str, Any]] = []
    due_by_address: dict[str, float] = {}
    for load in loads:
        tag = f"e2e{load}-{uuid.uuid4().hex[:4]}"
        recorded = offer(f"{url}/v1/appointments", load, seconds, stack.workdir / f"load-{tag}.json",
                         booking_key=API_KEY, run=tag)
        http = summarise(recorded)
        due = {f"{tag}-{n}@example.com": at for n, at, _, status in recorded["requests"] if status == 201}
        due_by_address |= due
        window = max(drain_timeout, 2 * len(due) / ASSUMED_DRAIN_PER_S)  # an email and a text per booking
        arrived = _wait_for_mails(sink, set(due), window)
        latencies = [min(stamps) - due[address] for address, stamps in arrived.items()]
        rows.append({
            "offered_per_s": load, "seconds": seconds, "posted": http["requests"], "accepted": http["accepted"],
            "http_p50_ms": http["p50_ms"], "http_p99_ms": http["p99_ms"],
            "delivered_within_window": len(arrived), "window_s": window,
            "p50_s": percentile(latencies, 0.50), "p95_s": percentile(latencies, 0.95),
            "p99_s": percentile(latencies, 0.99),
        })
    # Whatever had not arrived gets one more chance before it is called lost.
    final = _wait_for_mails(sink, set(due_by_address), drain_timeout)
    per_message = Counter(mail["message_id"] for mail in sink.mails())
    per_address = {address: len(stamps) for address, stamps in final.items()}
    for row in rows:
        prefix = f"e2e{row['offered_per_s']}-"
        mine = [address for address in due_by_address if address.startswith(prefix)]
        row["lost"] = sum(1 for address in mine if address not in final)
        row["duplicated"] = sum(1 for address in mine if per_address.get(address, 0) > 1)
    return {"rows": rows, "duplicate_message_ids": sum(1 for count in per_message.values() if count > 1)}
