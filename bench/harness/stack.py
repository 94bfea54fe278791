"""The processes a benchmark runs against: broker, PostgreSQL, SMTP sink, Twilio sandbox, Redis, and the
services themselves, each started once and stopped at the end (`Stack.close`)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.channels import ACCOUNT_SID, AUTH_TOKEN, CLINIC_NUMBER
from tests.support.kafka_server import KafkaServer, free_port, start_kafka
from tests.support.postgres_server import PostgresServer, start_postgres
from tests.support.processes import ServiceProcess, wait_for_http

REPO = Path(__file__).resolve().parents[2]
SENDER = "Harbourfront Sports Medicine <no-reply@harbourfront-clinic.example>"
LINK_SECRET = "bench-link-secret-of-at-least-32-bytes!"


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s") from None
            time.sleep(0.05)


@dataclass
class Process:
    """A child process with its log in the work directory."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


def spawn(name: str, args: list[str], workdir: Path, env: dict[str, str] | None = None) -> Process:
    log = workdir / f"{name}.log"
    handle = log.open("ab")
    popen = subprocess.Popen(args, cwd=REPO, env={**os.environ, **(env or {})}, stdout=handle,
                             stderr=subprocess.STDOUT, start_new_session=True)
    return Process(name, popen, log)


@dataclass
class SinkProcess:
    process: Process
    port: int
    record: Path
    _read: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _offset: int = 0

    def mails(self) -> list[dict[str, Any]]:
        """Every mail the sink recorded since it started (or since `forget`). Only what it appended since
        the last call is read: a wait that polls this shares the cores with what it measures, and must
        not cost more as a drain of 100,000 mails goes on."""
        if not self.record.exists() or self.record.stat().st_size < self._offset:
            self._read, self._offset = [], 0
            if not self.record.exists():
                return []
        with self.record.open("rb") as handle:
            handle.seek(self._offset)
            appended = handle.read()
        # The sink may be writing the last line right now: only whole lines are read.
        complete = appended[: appended.rfind(b"\n") + 1]
        self._offset += len(complete)
        self._read.extend(json.loads(line) for line in complete.splitlines() if line.strip())
        return list(self._read)

    def forget(self) -> None:
        self.record.write_text("")
        self._read, self._offset = [], 0


@dataclass
class SandboxProcess:
    process: Process
    url: str

    def messages(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/_sandbox/messages", timeout=60)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def forget(self) -> None:
        httpx.delete(f"{self.url}/_sandbox/messages", timeout=60).raise_for_status()

    def set_latency(self, seconds: float) -> None:
        httpx.put(f"{self.url}/_sandbox/latency", json={"seconds": seconds}, timeout=10).raise_for_status()


@dataclass
class Stack:
    workdir: Path
    kafka: KafkaServer | None = None
    postgres: PostgresServer | None = None
    redis_port: int | None = None
    processes: list[Process] = field(default_factory=list)

    def ensure_kafka(self) -> KafkaServer:
        if self.kafka is None:
            self.kafka = start_kafka(self.workdir / f"kafka-{uuid.uuid4().hex[:6]}")
        return self.kafka

    def ensure_postgres(self) -> PostgresServer:
        if self.postgres is None:
            self.postgres = start_postgres(self.workdir / "postgres")
        return self.postgres

    def ensure_redis(self) -> int:
        if self.redis_port is None:
            server = shutil.which("redis-server")
            if server is None:
                raise RuntimeError("redis-server is missing: bash bench/setup.sh installs it")
            port = free_port()
            self.processes.append(spawn("redis", [server, "--port", str(port), "--bind", "127.0.0.1",
                                                  "--save", "", "--appendonly", "no"], self.workdir))
            wait_for_port(port)
            self.redis_port = port
        return self.redis_port

    def start_sink(self, name: str, delay: float = 0.0) -> SinkProcess:
        port = free_port()
        record = self.workdir / f"{name}.jsonl"
        record.write_text("")
        process = spawn(name, [sys.executable, "-m", "bench.harness.sink_process", "--port", str(port),
                               "--delay", str(delay), "--record", str(record)], self.workdir)
        self.processes.append(process)
        wait_for_port(port)
        return SinkProcess(process, port, record)

    def start_sandbox(self, name: str, latency: float = 0.0) -> SandboxProcess:
        port = free_port()
        process = spawn(name, [sys.executable, "-m", "sandbox.twilio_sandbox", "--account-sid", ACCOUNT_SID,
                               "--auth-token", AUTH_TOKEN, "--phone-number", CLINIC_NUMBER, "--port", str(port),
                               "--latency", str(latency), "--status-delay", "600"], self.workdir)
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/_sandbox/settings")
        return SandboxProcess(process, url)

    def service(self, name: str, module: str, env: dict[str, str], ready_line: str) -> ServiceProcess:
        service = ServiceProcess(name, module, env, self.workdir / f"{name}.log", ready_line)
        service.start(timeout=120)
        assert service.process is not None
        self.processes.append(Process(name, service.process, service.log_path))
        return service

    def stop(self, process: Process | SinkProcess | SandboxProcess) -> None:
        own = process if isinstance(process, Process) else process.process
        own.stop()

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        if self.kafka is not None:
            self.kafka.stop()
            self.kafka = None


def channel_env(sink: SinkProcess, sandbox: SandboxProcess) -> dict[str, str]:
    """What a sending service reads to reach the sink and the sandbox."""
    return {
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(sink.port), "SMTP_SENDER": SENDER,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_FROM_NUMBER": CLINIC_NUMBER,
        "TWILIO_API_BASE_URL": sandbox.url, "LINK_SECRET": LINK_SECRET, "PATIENT_WEB_URL": "http://127.0.0.1:8040",
        "LOG_JSON": "true", "LOG_LEVEL": "INFO",
    }
