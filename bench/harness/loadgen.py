"""`python -m bench.harness.loadgen URL --rate R --seconds S --out FILE [--booking KEY --run TAG]`: an
open-loop HTTP load generator in a process of its own. Request i is due at start + i/R whether or not
earlier ones were answered; its latency is counted from that due instant (a slow server is not let off by
the generator waiting for it). Writes one JSON document: every request's due time, latency and status."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx


def booking_body(run: str, n: int) -> dict[str, Any]:
    starts_at = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0, second=0)
    return {
        "patient": {"patient_id": f"pt-{run}-{n}", "name": "Bench Patient", "email": f"{run}-{n}@example.com",
                    "phone": f"+1416{4_000_000 + n:07d}", "locale": "en-CA", "time_zone": "America/Toronto",
                    "consent": {"email": True, "sms": False}},
        "appointment": {"type": "physiotherapy", "starts_at": starts_at.isoformat(), "duration_minutes": 30,
                        "practitioner": "Sam Lee", "location_id": "downtown"},
    }


async def generate(url: str, rate: float, seconds: float, api_key: str | None, run: str,
                   first: int) -> list[list[Any]]:
    count = int(rate * seconds)
    results: list[list[Any]] = []
    # A bounded pool: beyond it requests queue in the generator (and their latency counts from their
    # due instant), rather than opening hundreds of connections the server must accept.
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(httpx.HTTPError):  # warm up: the first connection and the server's first answer
            await client.get(str(httpx.URL(url).copy_with(path="/healthz")))
        start = loop.time() + 0.2
        wall_start = time.time() + 0.2

        async def one(i: int) -> None:
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            n = first + i
            try:
                if api_key is None:
                    response = await client.post(url, json={"n": n})
                else:
                    response = await client.post(url, json=booking_body(run, n), headers={"X-API-Key": api_key})
                status: int | str = response.status_code
            except httpx.HTTPError as error:
                status = type(error).__name__
            results.append([n, wall_start + i / rate, loop.time() - due, status])

        await asyncio.gather(*(one(i) for i in range(count)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--booking-key", default=None, help="POST bookings with this API key")
    parser.add_argument("--run", default="bench")
    parser.add_argument("--first", type=int, default=0)
    args = parser.parse_args()
    started = time.time()
    results = asyncio.run(generate(args.url, args.rate, args.seconds, args.booking_key, args.run, args.first))
    args.out.write_text(json.dumps({"rate": args.rate, "seconds": args.seconds, "started": started,
                                    "requests": results}))


if __name__ == "__main__":
    main()
