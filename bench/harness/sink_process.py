"""`python -m bench.harness.sink_process`: the project's SMTP sink as a process of its own, writing one
JSON line per accepted mail (envelope recipients, Message-ID, subject, time accepted) to a file."""
from __future__ import annotations

import argparse
import email.policy
import json
import signal
import threading
from email.parser import BytesHeaderParser
from pathlib import Path

from sandbox.smtp_sink import ReceivedMail, SmtpSink


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args()
    record = args.record.open("a", buffering=1)
    lock = threading.Lock()

    def keep(mail: ReceivedMail) -> None:
        headers = BytesHeaderParser(policy=email.policy.default).parsebytes(mail.raw)  # the body is not read
        line = json.dumps({"to": list(mail.recipients), "message_id": headers["Message-ID"],
                           "subject": headers["Subject"], "at": mail.received_at})
        with lock:
            record.write(line + "\n")

    sink = SmtpSink(port=args.port, delay=args.delay, on_mail=keep)
    sink.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("sink_ready", flush=True)
    while not stop.wait(1.0):
        sink.clear()  # the sink keeps every mail in memory; the record file is what is read
    sink.stop()
    record.close()


if __name__ == "__main__":
    main()
