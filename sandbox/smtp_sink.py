"""A local SMTP server that keeps what it receives (aiosmtpd), with injectable failures.

`python -m sandbox.smtp_sink --port 1025 --maildir .run/mail` runs it until Ctrl-C.
"""
from __future__ import annotations

import argparse
import email.message
import email.policy
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
    message: email.message.EmailMessage
    mail_from: str
    recipients: tuple[str, ...]  # the envelope's RCPT TO, which may differ from the To header
    raw: bytes
    received_at: float = field(default_factory=time.time)

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
    ) -> None:
        self.host = host
        # Chosen now so that a restarted sink comes back on the same port.
        self.port = port or _free_port(host)
        self._maildir = maildir
        self._on_mail = on_mail
        self._received: list[ReceivedMail] = []
        self._accepted = 0  # never reset, so .eml names stay unique across clear()
        self._failures_left = 0
        self._failure_reply = ""
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
        message = BytesParser(policy=email.policy.default).parsebytes(raw)
        assert isinstance(message, email.message.EmailMessage)
        mail = ReceivedMail(message, mail_from, tuple(recipients), raw)
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
        raw = envelope.original_content or envelope.content
        return self._sink._receive(envelope.mail_from, list(envelope.rcpt_tos), raw)


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
    args = parser.parse_args(argv)
    sink = SmtpSink(port=args.port, maildir=args.maildir, on_mail=_print_arrival)
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
