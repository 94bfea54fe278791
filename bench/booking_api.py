"""Booking API alone: accepted bookings/s and latency at a fixed offered load, the service as a real
process (uvicorn inside it, its outbox relay publishing to the broker), on SQLite and on PostgreSQL;
next to the same FastAPI/uvicorn stack serving a trivial endpoint. The load generator is a process of
its own on the same machine: on 2 cores it competes with the server for CPU."""
from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import uuid
from typing import Any

from bench.harness.databases import new_postgres_database, sqlite_url
from bench.harness.load import offer, summarise
from bench.harness.stack import Stack, spawn
from tests.support.kafka_server import free_port
from tests.support.processes import wait_for_http

API_KEY = "bench-booking-key"


def booking_env(stack: Stack, database_url: str, port: int) -> dict[str, str]:
    kafka = stack.ensure_kafka()
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "LOG_JSON": "true", "LOG_LEVEL": "INFO",
        "BOOKING_API_KEYS": API_KEY, "BOOKING_DATABASE_URL": database_url, "BOOKING_HTTP_PORT": str(port),
        "BOOKING_METRICS_PORT": str(free_port()), "BOOKING_RATE_LIMIT_PER_SECOND": "1000000",
        "BOOKING_RATE_LIMIT_BURST": "1000000", "BOOKING_OUTBOX_POLL_INTERVAL_S": "0.2",
    }


def start_booking(stack: Stack, database_url: str, name: str, processes: int = 1) -> tuple[str, list[Any]]:
    """`processes` instances of the service listening on one port together (BOOKING_HTTP_SHARED_PORT)."""
    port = free_port()
    env = booking_env(stack, database_url, port)
    if processes > 1:
        env["BOOKING_HTTP_SHARED_PORT"] = "true"
    services = []
    for number in range(processes):
        own = env | ({"BOOKING_METRICS_PORT": str(free_port())} if number else {})
        services.append(stack.service(name if processes == 1 else f"{name}-{number}", "services.booking_events",
                                      own, "booking_events_started"))
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/healthz")
    return url, services


# Offered rates, each for the given seconds: up to the target (500/s) and past it.
SIZES = {"quick": ((50.0,), 2.0), "medium": ((100.0, 300.0, 500.0), 5.0), "full": ((100.0, 300.0, 500.0, 800.0), 20.0)}


def run(stack: Stack, form: str) -> dict[str, Any]:
    rates, seconds = SIZES[form]
    rows: list[dict[str, Any]] = []
    port = free_port()
    trivial = spawn("trivial-http", [sys.executable, "-m", "bench.harness.trivial_app", str(port)], stack.workdir)
    stack.processes.append(trivial)
    wait_for_http(f"http://127.0.0.1:{port}/healthz")
    for rate in rates:
        recorded = offer(f"http://127.0.0.1:{port}/echo", rate, seconds, stack.workdir / f"load-trivial-{rate}.json")
        rows.append({"server": "trivial endpoint (same FastAPI + uvicorn)"} | summarise(recorded))
    closed_loop = wrk_requests_per_second(f"http://127.0.0.1:{port}/echo", seconds, stack)
    stack.stop(trivial)
    postgres = stack.ensure_postgres()
    for label, name, database_url, processes in (
        ("booking API, SQLite", "booking-sqlite", sqlite_url(stack.workdir, "booking"), 1),
        ("booking API, PostgreSQL", "booking-postgresql",
         asyncio.run(new_postgres_database(postgres, "booking")), 1),
        ("booking API, PostgreSQL, 2 processes on one port", "booking-postgresql-x2",
         asyncio.run(new_postgres_database(postgres, "booking")), 2),
    ):
        url, services = start_booking(stack, database_url, name, processes)
        for rate in rates:
            run_tag = uuid.uuid4().hex[:6]
            recorded = offer(f"{url}/v1/appointments", rate, seconds, stack.workdir / f"load-{run_tag}.json",
                             booking_key=API_KEY, run=run_tag)
            rows.append({"server": label} | summarise(recorded))
        for service in services:
            service.stop()
    return {"rows": rows, "offered_per_s": list(rates), "seconds": seconds,
            "trivial_wrk_closed_loop_per_s": closed_loop}


def wrk_requests_per_second(url: str, seconds: float, stack: Stack) -> float | None:
    """The trivial endpoint as fast as `wrk` (C, 1 thread, 16 connections, closed loop) can drive it:
    the stack's ceiling without a Python load generator. None when wrk is not installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = stack.workdir / "post.lua"
    script.write_text('wrk.method = "POST"\nwrk.body = \'{"n": 1}\'\n'
                      'wrk.headers["Content-Type"] = "application/json"\n')
    done = subprocess.run([wrk, "-t1", "-c16", f"-d{max(2, int(seconds))}s", "-s", str(script), url],
                          capture_output=True, text=True, timeout=seconds + 60)
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    return float(found.group(1)) if found else None
