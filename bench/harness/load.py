"""Runs the load generator process against a URL and summarises what it recorded."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness.stack import REPO
from bench.harness.stats import percentile


def offer(url: str, rate: float, seconds: float, out: Path, *, booking_key: str | None = None,
          run: str = "bench", first: int = 0) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.harness.loadgen", url, "--rate", str(rate), "--seconds", str(seconds),
               "--out", str(out), "--run", run, "--first", str(first)]
    if booking_key:
        command += ["--booking-key", booking_key]
    subprocess.run(command, cwd=REPO, check=True, timeout=seconds + 180)
    recorded: dict[str, Any] = json.loads(out.read_text())
    return recorded


def summarise(recorded: dict[str, Any], accepted_status: int = 201) -> dict[str, Any]:
    requests = recorded["requests"]
    statuses = Counter(str(status) for _, _, _, status in requests)
    accepted = [r for r in requests if r[3] == accepted_status]
    latencies = [latency for _, _, latency, _ in accepted]
    span = 0.0
    if accepted:
        span = max(due + latency for _, due, latency, _ in accepted) - min(due for _, due, _, _ in requests)
    return {
        "offered_per_s": recorded["rate"], "seconds": recorded["seconds"], "requests": len(requests),
        "accepted": len(accepted), "accepted_per_s": len(accepted) / span if span > 0 else None,
        "p50_ms": _ms(percentile(latencies, 0.50)), "p99_ms": _ms(percentile(latencies, 0.99)),
        "statuses": dict(statuses),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
