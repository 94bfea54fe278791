"""`python -m sandbox.twilio_sandbox`: serve the sandbox on loopback."""
from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from sandbox.twilio_sandbox.app import DEFAULT_SANDBOX_NUMBER, create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.twilio_sandbox",
        description="Twilio-compatible SMS sandbox (loopback only).",
    )
    parser.add_argument("--port", type=int, default=8030)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 only inside a container)")
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--auth-token", required=True)
    parser.add_argument("--inbound-webhook-url", default=None)
    parser.add_argument("--record-file", type=Path, default=None)
    parser.add_argument("--phone-number", default=DEFAULT_SANDBOX_NUMBER,
                        help="the sandbox's own number, the default To of inbound texts")
    args = parser.parse_args(argv)
    app = create_app(
        args.account_sid,
        args.auth_token,
        inbound_webhook_url=args.inbound_webhook_url,
        record_file=args.record_file,
        phone_number=args.phone_number,
    )
    # Access logs would print patients' numbers in query strings; keep them off.
    uvicorn.run(app, host=args.host, port=args.port, access_log=False)
