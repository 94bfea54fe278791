"""The SMTP sink's per-message delay: a slow mail server that still serves connections side by side."""
from __future__ import annotations

import asyncio
import email.message
import os
import subprocess
import sys
import time
from pathlib import Path

import aiosmtplib
import pytest

from sandbox.smtp_sink import SmtpSink

REPO = Path(__file__).resolve().parents[2]


def mail(n: int) -> email.message.EmailMessage:
    message = email.message.EmailMessage()
    message["From"] = "appointments@clinic.example"
    message["To"] = f"patient{n}@example.org"
    message["Subject"] = f"Mail {n}"
    message.set_content("See you Tuesday at 10:00.")
    return message


async def send(sink: SmtpSink, n: int) -> float:
    """Send one mail on its own connection; how long the server took to accept it."""
    started = time.monotonic()
    await aiosmtplib.send(mail(n), hostname=sink.host, port=sink.port, timeout=30)
    return time.monotonic() - started


async def test_no_delay_by_default() -> None:
    with SmtpSink() as sink:
        assert sink.delay == 0
        assert await send(sink, 0) < 2


async def test_each_message_takes_the_delay_and_connections_are_served_concurrently() -> None:
    delay = 1.5
    with SmtpSink(delay=delay) as sink:
        started = time.monotonic()
        took = await asyncio.gather(*(send(sink, n) for n in range(4)))
        elapsed = time.monotonic() - started

        assert min(took) >= delay
        assert elapsed < 2 * delay  # one after another would take 4 x delay
        assert sorted(m.message["Subject"] for m in sink.messages) == [f"Mail {n}" for n in range(4)]


async def test_the_delay_can_be_changed_while_running() -> None:
    with SmtpSink() as sink:
        sink.set_delay(0.5)
        assert await send(sink, 1) >= 0.5
        sink.set_delay(0)
        assert await send(sink, 2) < 0.5
        assert len(sink.messages) == 2


async def test_a_refusal_also_comes_after_the_delay() -> None:
    with SmtpSink(delay=0.5) as sink:
        sink.fail_next(1, code=451)
        started = time.monotonic()
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await aiosmtplib.send(mail(3), hostname=sink.host, port=sink.port, timeout=30)
        assert refused.value.code == 451
        assert time.monotonic() - started >= 0.5
        assert sink.messages == []


def test_a_delay_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        SmtpSink(delay=-1)
    with SmtpSink() as sink, pytest.raises(ValueError):
        sink.set_delay(-0.1)


def test_the_command_line_takes_a_delay(tmp_path: Path) -> None:
    sink = SmtpSink()  # not started: only to pick a free port
    log = tmp_path / "sink.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "sandbox.smtp_sink", "--port", str(sink.port), "--delay", "0.4"],
            cwd=REPO, env=os.environ, stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while "listening" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)

        started = time.monotonic()
        asyncio.run(aiosmtplib.send(mail(4), hostname="127.0.0.1", port=sink.port, timeout=30))
        assert time.monotonic() - started >= 0.4
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert "'Mail 4' to 1 recipient(s)" in log.read_text()


def test_the_command_line_refuses_a_negative_delay() -> None:
    done = subprocess.run([sys.executable, "-m", "sandbox.smtp_sink", "--delay", "-1"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--delay" in done.stderr
