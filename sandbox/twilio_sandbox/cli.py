"""`python -m sandbox.twilio_sandbox`: serve the sandbox on loopback.

Each tuning flag has an environment variable, read when the flag is not given (the flag wins).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn

from sandbox.twilio_sandbox.app import DEFAULT_SANDBOX_NUMBER, create_app
from sandbox.twilio_sandbox.callbacks import CallbackSettings

_DEFAULTS = CallbackSettings()


def _env(name: str, default: object) -> object:
    # A string default goes through the flag's own type check, so a bad value is refused alike.
    return os.environ.get(name, "").strip() or default


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.twilio_sandbox",
        description="Twilio-compatible SMS sandbox (loopback only). See sandbox/README.md.",
    )
    parser.add_argument("--port", type=int, default=8030)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 only inside a container)")
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--auth-token", required=True)
    parser.add_argument("--inbound-webhook-url", default=None)
    parser.add_argument("--record-file", type=Path, default=None)
    parser.add_argument("--phone-number", default=DEFAULT_SANDBOX_NUMBER,
                        help="the sandbox's own number, the default To of inbound texts")
    parser.add_argument("--latency", type=_non_negative,
                        default=_env("TWILIO_SANDBOX_LATENCY", 0.0),
                        help="seconds added to each Messages API request (env TWILIO_SANDBOX_LATENCY; default 0)")
    parser.add_argument("--rate-limit", type=_positive,
                        default=_env("TWILIO_SANDBOX_RATE_LIMIT", None),
                        help="messages per second per sender, beyond which a create answers 429/20429 "
                             "(env TWILIO_SANDBOX_RATE_LIMIT; default: no limit)")
    parser.add_argument("--status-delay", type=_non_negative,
                        default=_env("TWILIO_SANDBOX_STATUS_DELAY", _DEFAULTS.step_delay),
                        help="seconds between a message's statuses (env TWILIO_SANDBOX_STATUS_DELAY; "
                             f"default {_DEFAULTS.step_delay})")
    parser.add_argument("--callback-attempts", type=_at_least_one, default=_DEFAULTS.attempts,
                        help=f"posts of a failing status callback at most (default {_DEFAULTS.attempts})")
    parser.add_argument("--callback-backoff", type=_non_negative, default=_DEFAULTS.backoff,
                        help="seconds before a callback's first retry, doubled each time "
                             f"(default {_DEFAULTS.backoff})")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    app = create_app(
        args.account_sid,
        args.auth_token,
        inbound_webhook_url=args.inbound_webhook_url,
        record_file=args.record_file,
        phone_number=args.phone_number,
        latency=args.latency,
        rate_limit=args.rate_limit,
        callbacks=CallbackSettings(
            step_delay=args.status_delay, attempts=args.callback_attempts, backoff=args.callback_backoff
        ),
    )
    # Access logs would print patients' numbers in query strings; keep them off.
    uvicorn.run(app, host=args.host, port=args.port, access_log=False)
