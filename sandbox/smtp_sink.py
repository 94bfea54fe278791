"""A local SMTP server that keeps what it receives (aiosmtpd), with injectable failures.

`python -m sandbox.smtp_sink --port 1025 --maildir .run/mail` runs it until Ctrl-C; `--delay 0.3`
makes it take 0.3 s over each message, like a slow mail server. See sandbox/README.md.
"""
from __future__ import annotations

import argparse
import asyncio
import email.message
import email.policy
import functools
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    recipients: tuple[str, ...]  # the envelope's RCPT TO, which may differ from the To header
    raw: bytes
    received_at: float = field(default_factory=time.time)

    @functools.cached_property
    def message(self) -> email.message.EmailMessage:
        """The mail parsed, when first asked for: parsing every mail as it arrives (email's default
        policy) cost the sink more CPU than the sender spent writing it."""
        message = BytesParser(policy=email.policy.default).parsebytes(self.raw)
        assert isinstance(message, email.message.EmailMessage)
        return message

    def body(self, subtype: str = "plain") -> str:
        """The text of the body part of this subtype ("plain" or "html")."""
        part = self.message.get_body((subtype,))
        if part is None:
            raise LookupError(f"the mail has no text/{subtype} part")
        text: str = part.get_content()
        return text


class SmtpSink:
    """Accepts every mail on loopback and keeps it in memory (and as .eml files in `maildir`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        maildir: Path | None = None,
        on_mail: Callable[[ReceivedMail], None] | None = None,
        delay: float = 0.0,
    ) -> None:
        """`delay`: seconds the sink takes over each message's DATA before answering it."""
        _check_delay(delay)
        self.host = host
        # Chosen now so that a restarted sink comes back on the same port.
        self.port = port or _free_port(host)
        self._maildir = maildir
        self._on_mail = on_mail
        self._received: list[ReceivedMail] = []
        self._accepted = 0  # never reset, so .eml names stay unique across clear()
        self._failures_left = 0
        self._failure_reply = ""
        self._delay = delay
        self._changed = threading.Condition()
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._changed:
            return list(self._received)

    def start(self) -> None:
        if self._controller is not None:
            raise RuntimeError("sink already running")
        if self._maildir is not None:
            self._maildir.mkdir(parents=True, exist_ok=True)
        # server_hostname spares aiosmtpd a slow getfqdn() lookup.
        controller = Controller(
            _Handler(self), hostname=self.host, port=self.port, server_hostname="smtp-sink.local"
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def clear(self) -> None:
        with self._changed:
            self._received.clear()

    @property
    def delay(self) -> float:
        with self._changed:
            return self._delay

    def set_delay(self, seconds: float) -> None:
        """From now on each message's DATA is answered `seconds` later (0: at once).

        Only that message's connection waits: the sink serves other connections meanwhile.
        """
        _check_delay(seconds)
        with self._changed:
            self._delay = seconds

    def fail_next(
        self, n: int, code: int = 451, message: str = "Requested action aborted: try again later"
    ) -> None:
        """The next `n` DATA commands are answered `code message` instead of 250."""
        if not 400 <= code < 600:
            raise ValueError("an SMTP failure code is 4xx or 5xx")
        with self._changed:
            self._failures_left = n
            self._failure_reply = f"{code} {message}"

    def wait_for(
        self, predicate: Callable[[ReceivedMail], bool], timeout: float = 5.0
    ) -> ReceivedMail:
        """The first received mail matching `predicate`, waiting up to `timeout` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for mail in self._received:
                    if predicate(mail):
                        return mail
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("no matching mail arrived")
                self._changed.wait(remaining)

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _receive(self, mail_from: str, recipients: list[str], raw: bytes) -> str:
        with self._changed:
            if self._failures_left > 0:
                self._failures_left -= 1
                return self._failure_reply
        mail = ReceivedMail(mail_from, tuple(recipients), raw)
        with self._changed:
            self._received.append(mail)
            self._accepted += 1
            count = self._accepted
            self._changed.notify_all()
        if self._maildir is not None:
            self._write_eml(raw, count)
        if self._on_mail is not None:
            self._on_mail(mail)
        return f"250 OK queued as sink-{count}"

    def _write_eml(self, raw: bytes, count: int) -> None:
        assert self._maildir is not None
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        (self._maildir / f"{stamp}-{count:05d}.eml").write_bytes(raw)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        delay = self._sink.delay
        if delay > 0:
            await asyncio.sleep(delay)  # on the sink's event loop: other connections go on
        raw = envelope.original_content or envelope.content
        return self._sink._receive(envelope.mail_from, list(envelope.rcpt_tos), raw)


def _check_delay(seconds: float) -> None:
    if not 0 <= seconds <= 600:
        raise ValueError("a delay is between 0 and 600 seconds")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _print_arrival(mail: ReceivedMail) -> None:
    # Subject and a count only: addresses are patient data and must stay out of logs.
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"{stamp} mail: {mail.message['Subject']!r} to {len(mail.recipients)} recipient(s)",
          flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.smtp_sink",
                                     description="Local SMTP sink on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--maildir", type=Path, default=None)
    parser.add_argument("--delay", type=float, default=os.environ.get("SMTP_SINK_DELAY", "").strip() or 0.0,
                        help="seconds taken over each message before answering it (env SMTP_SINK_DELAY; default 0)")
    args = parser.parse_args(argv)
    try:
        sink = SmtpSink(port=args.port, maildir=args.maildir, on_mail=_print_arrival, delay=args.delay)
    except ValueError as exc:
        parser.error(f"--delay: {exc}")
    stopping = threading.Event()
    # Set explicitly: a shell starting us in the background would leave SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    sink.start()
    print(f"SMTP sink listening on 127.0.0.1:{sink.port}; Ctrl-C to stop", flush=True)
    try:
        stopping.wait()
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
