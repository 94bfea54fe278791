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

import aiohttp
import uvloop
from yarl import URL


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
    # Bodies are made before the clock starts: the generator's own work must not delay requests.
    bodies = [json.dumps({"n": first + i} if api_key is None else booking_body(run, first + i)).encode()
              for i in range(count)]
    headers = {"Content-Type": "application/json"} | ({"X-API-Key": api_key} if api_key else {})
    # aiohttp (a C HTTP parser) rather than httpx: at a few hundred requests a second the generator
    # would otherwise take as much CPU as the server it measures. A bounded pool: beyond it requests
    # queue in the generator (and their latency counts from their due instant), rather than opening
    # hundreds of connections the server must accept.
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as client:
        with contextlib.suppress(aiohttp.ClientError):  # warm up: the first connection and the server's first answer
            async with client.get(str(URL(url).with_path("/healthz"))) as warm:
                await warm.read()
        # time.monotonic rather than the loop's clock, which counts whole milliseconds on uvloop.
        start = time.monotonic() + 0.2
        wall_start = time.time() + 0.2

        async def one(i: int) -> None:
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            try:
                async with client.post(url, data=bodies[i], headers=headers) as response:
                    await response.read()
                    status: int | str = response.status
            except (aiohttp.ClientError, TimeoutError) as error:
                status = type(error).__name__
            results.append([first + i, wall_start + i / rate, time.monotonic() - due, status])

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
    results = uvloop.run(generate(args.url, args.rate, args.seconds, args.booking_key, args.run, args.first))
    args.out.write_text(json.dumps({"rate": args.rate, "seconds": args.seconds, "started": started,
                                    "requests": results}))


if __name__ == "__main__":
    main()
