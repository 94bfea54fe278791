"""A peer, side by side: the same reminder workload on the Celery + Redis design of Twilio's
appointment-reminder tutorial (bench/peer/reminders.py) and on the notifier (PostgreSQL ledger):
N reminders due at one instant, drain rate and worker memory; then the worker (or the notifier) is
SIGKILLed a third of the way through a second batch and started again, and what reached the sink is
counted per reminder: lost (never arrived) and duplicated (arrived more than once)."""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.end_to_end import start_notifier
from bench.harness.databases import new_postgres_database
from bench.harness.stack import Process, SinkProcess, Stack, spawn
from bench.scheduler_scale import POOL_SIZE, RssSampler, fill_ledger, release

TEXT = "Reminder: your physiotherapy appointment is tomorrow at 10:00.\n" + "x" * 1400
HTML = "<p>Reminder: your physiotherapy appointment is tomorrow at 10:00.</p>" + "<p>" + "x" * 3000 + "</p>"


def _celery_env(redis_port: int, sink: SinkProcess, acks_late: bool, visibility_timeout: float) -> dict[str, str]:
    return {"BENCH_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "BENCH_SMTP_PORT": str(sink.port),
            "BENCH_ACKS_LATE": "1" if acks_late else "0", "BENCH_VISIBILITY_TIMEOUT": str(visibility_timeout)}


def _start_worker(stack: Stack, env: dict[str, str], name: str) -> Process:
    process = spawn(name, [sys.executable, "-m", "celery", "-A", "bench.peer.reminders", "worker",
                           "--concurrency", str(POOL_SIZE), "--pool", "prefork", "--loglevel", "WARNING",
                           "--without-gossip", "--without-mingle", "--without-heartbeat"], stack.workdir, env)
    stack.processes.append(process)
    return process


def _enqueue(env: dict[str, str], tag: str, count: int, eta: datetime) -> float:
    """Schedules `count` reminders with an ETA, as the tutorial's producer does; the seconds it took."""
    os.environ.update(env)
    from bench.peer.reminders import send_reminder

    started = time.monotonic()
    for n in range(count):
        send_reminder.apply_async((f"{tag}-{n}@example.com", f"<{tag}-{n}@reminders>", "Reminder", TEXT, HTML),
                                  eta=eta)
    return time.monotonic() - started


def _wait(sink: SinkProcess, tag: str, count: int, timeout: float, quiet_for: float = 0.0) -> list[dict[str, Any]]:
    """Mails of this run once `count` arrived (and nothing more came for `quiet_for` s), or at the timeout."""
    deadline = time.monotonic() + timeout
    last_change, seen = time.monotonic(), -1
    while True:
        mine = [m for m in sink.mails() if m["to"] and m["to"][0].startswith(tag + "-")]
        if len(mine) != seen:
            seen, last_change = len(mine), time.monotonic()
        settled = time.monotonic() - last_change >= quiet_for
        if (len({m["to"][0] for m in mine}) >= count and settled) or time.monotonic() > deadline:
            return mine
        time.sleep(0.25)  # the cores are shared with the systems measured


def drain(mails: list[dict[str, Any]], started: float) -> dict[str, Any]:
    """A drain as the patients see it: reminders that arrived (each counted once, at its first arrival),
    the rate of those, and how many arrived more than once (`sends` counts every mail)."""
    first: dict[str, float] = {}
    for mail in mails:
        to = mail["to"][0]
        first[to] = min(mail["at"], first.get(to, mail["at"]))
    per = Counter(mail["to"][0] for mail in mails)
    seconds = max(first.values()) - started if first else None
    return {"drained": len(first), "sends": len(mails), "sent_twice_in_drain": sum(1 for n in per.values() if n > 1),
            "drain_per_s": len(first) / seconds if seconds else None}


def _kill_group(process: Process) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.popen.wait(10)


def after_kill(mails: list[dict[str, Any]], wanted: list[str]) -> dict[str, int]:
    """Of the `wanted` recipients, how many got no mail (lost) and how many more than one (duplicated)."""
    per = Counter(m["to"][0] for m in mails)
    return {"lost": sum(1 for to in wanted if per[to] == 0), "duplicated": sum(1 for to in wanted if per[to] > 1)}


def celery_side(stack: Stack, count: int, kill_count: int, visibility_timeout: float, acks_late: bool
                ) -> dict[str, Any]:
    sink = stack.start_sink(f"peer-sink-{'late' if acks_late else 'early'}")
    env = _celery_env(stack.ensure_redis(), sink, acks_late, visibility_timeout)
    worker = _start_worker(stack, env, "celery-worker")
    time.sleep(3.0)
    tag = "c" + uuid.uuid4().hex[:5]
    lead = max(5.0, count / 1500)
    eta = datetime.now(UTC) + timedelta(seconds=lead)
    enqueue_s = _enqueue(env, tag, count, eta)
    with RssSampler([worker.pid], with_children=True) as sampler:
        mails = _wait(sink, tag, count, timeout=max(120.0, count / 5))
    result: dict[str, Any] = {
        "system": "Celery + Redis (ETA)", "due_at_once": count, "enqueue_s": enqueue_s,
        **drain(mails, eta.timestamp()), "worker_rss_mib_max": max(sampler.samples, default=None),
        "settings": f"acks_late={acks_late}, visibility_timeout={visibility_timeout:g}s, prefork -c {POOL_SIZE}",
    }
    # The kill: a second batch, the worker SIGKILLed a third of the way, then started again.
    tag = "k" + uuid.uuid4().hex[:5]
    eta = datetime.now(UTC) + timedelta(seconds=max(5.0, kill_count / 1500))
    _enqueue(env, tag, kill_count, eta)
    _wait(sink, tag, kill_count // 3, timeout=max(120.0, kill_count / 5))
    _kill_group(worker)
    killed_at = time.monotonic()
    _start_worker(stack, env, "celery-worker-restarted")
    mails = _wait(sink, tag, kill_count, timeout=visibility_timeout + max(60.0, kill_count / 5), quiet_for=5.0)
    result |= {"after_kill": after_kill(mails, [f"{tag}-{n}@example.com" for n in range(kill_count)]),
               "kill_batch": kill_count,
               "after_kill_complete_s": time.monotonic() - killed_at}
    for process in [p for p in stack.processes if p.name.startswith("celery-worker")]:
        process.stop()
    stack.stop(sink)
    return result


def notifier_side(stack: Stack, count: int, kill_count: int) -> dict[str, Any]:
    postgres = stack.ensure_postgres()
    sink = stack.start_sink("peer-sink-notifier")
    sandbox = stack.start_sandbox("peer-sandbox")
    url = asyncio.run(new_postgres_database(postgres, "peer"))
    tag = "n" + uuid.uuid4().hex[:5]
    asyncio.run(fill_ledger(url, count + kill_count, count + kill_count, tag))
    notifier = start_notifier(stack, sink, url, name="peer-notifier", sandbox=sandbox,
                              extra={"SMTP_POOL_SIZE": str(POOL_SIZE)})
    assert notifier.process is not None
    due_at = datetime.now(UTC) + timedelta(seconds=3)
    asyncio.run(release(url, count, tag, due_at))
    with RssSampler([notifier.process.pid]) as sampler:
        mails = _wait(sink, tag, count, timeout=max(120.0, count / 5))
    result: dict[str, Any] = {
        "system": "clinic-notify notifier (PostgreSQL ledger)", "due_at_once": count,
        **drain(mails, due_at.timestamp()), "worker_rss_mib_max": max(sampler.samples, default=None),
        "settings": f"SMTP_POOL_SIZE={POOL_SIZE}, lease 60 s",
    }
    # The same kill on the second batch: rows count..count+kill_count-1 made due now.
    sink.forget()
    asyncio.run(_release_range(url, tag, count, count + kill_count))
    _wait(sink, tag, kill_count // 3, timeout=max(120.0, kill_count / 5))
    notifier.kill()
    killed_at = time.monotonic()
    restarted = start_notifier(stack, sink, url, name="peer-notifier-restarted", sandbox=sandbox,
                               group_id=notifier.env["NOTIFIER_GROUP_ID"], extra={"SMTP_POOL_SIZE": str(POOL_SIZE)})
    mails = _wait(sink, tag, kill_count, timeout=90.0 + max(60.0, kill_count / 5), quiet_for=5.0)
    # Row n of the second batch was recorded for recipient "<tag>-n": counted over that range.
    result |= {"after_kill": after_kill(mails, [f"{tag}-{n}@example.com" for n in range(count, count + kill_count)]),
               "kill_batch": kill_count, "after_kill_complete_s": time.monotonic() - killed_at}
    restarted.stop()
    stack.stop(sink)
    stack.stop(sandbox)
    return result


async def _release_range(url: str, tag: str, first: int, end: int) -> None:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        now = datetime.now(UTC)
        await connection.execute("UPDATE deliveries SET due_at = $1, scheduled_for = $1 WHERE id >= $2 AND id < $3",
                                 now, f"{tag}-{first:08d}", f"{tag}-{end:08d}")
    finally:
        await connection.close()


# Reminders due at once, the batch killed mid-way, Redis visibility timeout (s).
SIZES = {"quick": (200, 150, 15.0), "medium": (400, 300, 30.0), "full": (100_000, 3_000, 60.0)}


def run(stack: Stack, form: str) -> dict[str, Any]:
    count, kill_count, visibility_timeout = SIZES[form]
    rows = [notifier_side(stack, count, kill_count),
            celery_side(stack, count, kill_count, visibility_timeout, acks_late=True)]
    return {"rows": rows}
