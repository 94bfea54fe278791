"""The peer: the appointment-reminder design of Twilio's reference tutorial, on Celery with Redis.

Each reminder is a task scheduled with an ETA (`send_reminder.apply_async(args, eta=when)`); a Celery
worker holds ETA tasks in memory until they are due, then runs them. Here each reminder is an email
sent with aiosmtplib to the same SMTP sink as the notifier, over one reused connection per worker
process (prefork), the same count as the notifier's SMTP pool. Settings: BENCH_REDIS_URL,
BENCH_SMTP_PORT, BENCH_ACKS_LATE (1/0), BENCH_VISIBILITY_TIMEOUT (seconds).
"""
from __future__ import annotations

import asyncio
import email.message
import os
from typing import Any

import aiosmtplib
from celery import Celery
from celery.signals import worker_process_init

app = Celery("reminders", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_acks_late=os.environ.get("BENCH_ACKS_LATE", "1") == "1",
    task_reject_on_worker_lost=False,
    broker_transport_options={"visibility_timeout": float(os.environ.get("BENCH_VISIBILITY_TIMEOUT", "3600"))},
    task_ignore_result=True,
    worker_hijack_root_logger=False,
)

_loop: asyncio.AbstractEventLoop | None = None
_smtp: aiosmtplib.SMTP | None = None


@worker_process_init.connect
def _open_connection(**_: Any) -> None:
    global _loop, _smtp
    _loop = asyncio.new_event_loop()
    _smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=int(os.environ["BENCH_SMTP_PORT"]))


@app.task(name="send_reminder")
def send_reminder(to: str, message_id: str, subject: str, text: str, html: str) -> None:
    assert _loop is not None and _smtp is not None
    message = email.message.EmailMessage()
    message["From"] = "Harbourfront Sports Medicine <no-reply@harbourfront-clinic.example>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    _loop.run_until_complete(_send(message))


async def _send(message: email.message.EmailMessage) -> None:
    assert _smtp is not None
    if not _smtp.is_connected:
        await _smtp.connect()
    await _smtp.send_message(message)
