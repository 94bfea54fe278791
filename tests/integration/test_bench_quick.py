"""The benchmarks' quick form runs from one command and writes its report, table, data and plot.

It measures and checks nothing about speed: only that every benchmark ran and wrote its figures.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# It installs Redis and runs every benchmark: minutes on two cores, so it runs when asked for (-m bench).
pytestmark = [pytest.mark.bench, pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]


def test_the_quick_form_runs_every_benchmark_and_writes_its_results(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(REPO / "bench" / "run_all.py"), "--quick", "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["sections"]) == {"channels", "booking_api", "end_to_end", "scheduler", "peer", "ingest"}
    assert results["machine"]["nproc"] >= 1 and results["machine"]["load_average"]
    report = (tmp_path / "RESULTS.md").read_text()
    for heading in ("1. Channels", "2. Booking API", "3. End to end", "4. Scheduler", "5. A peer", "6. Ingest"):
        assert heading in report
    assert (tmp_path / "latency_vs_load.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Every section measured something: messages arrived, bookings were accepted.
    assert all(row["delivered"] > 0 for row in results["sections"]["channels"]["rows"])
    assert all(row["accepted"] > 0 for row in results["sections"]["booking_api"]["rows"])
    assert all(row["delivered_within_window"] > 0 for row in results["sections"]["end_to_end"]["rows"])
    assert all(row["drained"] > 0 for row in results["sections"]["scheduler"]["rows"])
    assert all(row["drained"] > 0 for row in results["sections"]["peer"]["rows"])
    assert all(row["service_per_s"] > 0 and row["raw_per_s"] > 0 for row in results["sections"]["ingest"]["rows"])
