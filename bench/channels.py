"""Channels: the dispatcher's email and SMS sending next to the raw clients (aiosmtplib, twilio's async
client) with the same connections to the same sink and sandbox processes, with and without provider
latency. Throughput is counted where the messages arrive (the sink's and the sandbox's own timestamps)."""
from __future__ import annotations

import asyncio
import email.utils
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiosmtplib
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from bench.harness.dispatching import composer, dispatch_all, reminder_intents
from bench.harness.stack import SENDER, SandboxProcess, SinkProcess, Stack
from bench.harness.stats import max_in_window
from shared.channels.email import encode_message
from shared.ledger.model import Delivery, DeliveryStatus
from tests.support.channels import ACCOUNT_SID, AUTH_TOKEN, CLINIC_NUMBER

SMTP_LATENCY = 0.2
TWILIO_LATENCY = 0.3
SMS_CONCURRENCY = 8
SMS_TEXT = "Reminder: your appointment tomorrow at 10:00. Reply STOP to opt out."


def _throughput(stamps: list[float], started: float) -> float | None:
    return len(stamps) / (max(stamps) - started) if stamps and max(stamps) > started else None


def sample_reminder() -> bytes:
    """One reminder email exactly as the dispatcher writes it (same template, size and structure)."""
    [intent] = reminder_intents("email", "raw", 1, _now())
    delivery = Delivery(str(uuid.uuid4()), intent.appointment_id, intent.step, intent.channel,
                        intent.appointment_version, intent.template, intent.recipient, intent.locale,
                        intent.context, intent.due_at, intent.due_at, None, DeliveryStatus.SENDING, 1,
                        None, None, None, None)
    return encode_message(composer().email(delivery, _now()), SENDER, "clinic.example").data


async def raw_smtp(port: int, connections: int, count: int, mail: bytes | None = None) -> float:
    """`count` mails over `connections` reused aiosmtplib connections, the message (a reminder unless
    given) written once beforehand (what the client alone can do); returns the start (epoch s)."""
    mail = mail if mail is not None else sample_reminder()
    envelope_sender = email.utils.parseaddr(SENDER)[1]
    started = time.time()

    async def one_connection(share: int) -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as smtp:
            for n in range(share):
                await smtp.sendmail(envelope_sender, [f"raw-{n}@example.com"], mail)

    shares = [count // connections + (1 if i < count % connections else 0) for i in range(connections)]
    await asyncio.gather(*(one_connection(share) for share in shares))
    return started


async def raw_twilio(url: str, concurrency: int, count: int) -> float:
    http = AsyncTwilioHttpClient()
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    client.api.base_url = url
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)
    started = time.time()

    async def sender() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            await client.messages.create_async(to=f"+1416{3_000_000 + n:07d}", from_=CLINIC_NUMBER, body=SMS_TEXT)

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    await http.close()
    return started


async def _email_case(sink: SinkProcess, pool: int, count: int, latency: float) -> dict[str, Any]:
    sink.forget()
    started = await raw_smtp(sink.port, pool, count)
    raw = _throughput([m["at"] for m in sink.mails()], started)
    sink.forget()
    run = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory() as directory:
        started = await dispatch_all(f"sqlite+aiosqlite:///{directory}/ledger.db",
                                     reminder_intents("email", run, count, _now()),
                                     smtp_port=sink.port, twilio_url="http://127.0.0.1:9", pool_size=pool)
    mails = sink.mails()
    ours = _throughput([m["at"] for m in mails], started)
    return {"channel": "email", "connections": pool, "provider_latency_s": latency, "messages": count,
            "delivered": len(mails), "dispatcher_per_s": ours, "raw_client_per_s": raw,
            "theoretical_per_s": pool / latency if latency else None}


async def _sms_case(sandbox: SandboxProcess, count: int, latency: float, rate: float) -> dict[str, Any]:
    sandbox.forget()
    started = await raw_twilio(sandbox.url, SMS_CONCURRENCY, count)
    raw = _throughput([m["sandbox_received_at"] for m in sandbox.messages()], started)
    sandbox.forget()
    run = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory() as directory:
        started = await dispatch_all(f"sqlite+aiosqlite:///{directory}/ledger.db",
                                     reminder_intents("sms", run, count, _now()), smtp_port=9,
                                     twilio_url=sandbox.url, sms_concurrency=SMS_CONCURRENCY, sms_per_second=rate)
    stamps = [m["sandbox_received_at"] for m in sandbox.messages()]
    ceiling = SMS_CONCURRENCY / latency if latency else None
    return {"channel": "sms", "connections": SMS_CONCURRENCY, "provider_latency_s": latency, "messages": count,
            "delivered": len(stamps), "dispatcher_per_s": _throughput(stamps, started), "raw_client_per_s": raw,
            "theoretical_per_s": min(rate, ceiling) if ceiling else rate, "configured_rate_per_s": rate,
            "max_in_1s_window": max_in_window(stamps)}


def _now() -> datetime:
    return datetime.now(UTC)


SIZES = {"quick": (40, 10, 20), "medium": (300, 40, 60), "full": (2000, 200, 300)}


async def run(stack: Stack, form: str) -> dict[str, Any]:
    emails, slow_emails, texts = SIZES[form]
    rows: list[dict[str, Any]] = []
    sink = stack.start_sink("channels-sink")
    slow_sink = stack.start_sink("channels-sink-slow", delay=SMTP_LATENCY)
    sandbox = stack.start_sandbox("channels-sandbox")
    try:
        for pool in (1, 4):
            rows.append(await _email_case(sink, pool, emails, 0.0))
            rows.append(await _email_case(slow_sink, pool, slow_emails * pool, SMTP_LATENCY))
        # The configured sender rate (10/s, the service default) and one far above what the sandbox
        # can take, to see the dispatcher's own ceiling next to the raw client's.
        rows.append(await _sms_case(sandbox, texts, 0.0, 10.0))
        rows.append(await _sms_case(sandbox, texts * 4, 0.0, 1000.0))
        sandbox.set_latency(TWILIO_LATENCY)
        rows.append(await _sms_case(sandbox, texts, TWILIO_LATENCY, 10.0))
        rows.append(await _sms_case(sandbox, texts, TWILIO_LATENCY, 1000.0))
    finally:
        for process in (sink, slow_sink, sandbox):
            stack.stop(process)
    return {"rows": rows}
