"""Every benchmark in one command, starting what it needs (Kafka broker, PostgreSQL, SMTP sink and Twilio
sandbox processes, Redis, the services), writing bench/results/RESULTS.md, results.json and
latency_vs_load.png.

    .venv/bin/python bench/run_all.py                 # the full form (an hour or more)
    .venv/bin/python bench/run_all.py --medium        # smaller sizes (each module's SIZES), labelled so
    .venv/bin/python bench/run_all.py --quick         # a few seconds per benchmark: that it runs (CI)
    .venv/bin/python bench/run_all.py --scale 10000,100000,1000000 --only scheduler

Benchmarks measure and print; they assert nothing about speed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import booking_api, channels, end_to_end, ingest, peer_celery, scheduler_scale
from bench.harness import machine, report
from bench.harness.stack import Stack
from shared.observability import configure_logging

HERE = Path(__file__).resolve().parent
# The ledger benchmarks first, on a broker nobody has published bookings to (their notifiers' new groups read
# the topics from the start); the end-to-end notifier's groups are started at the end of the topics. Ingest
# runs on a broker of its own.
SECTIONS = ("channels", "scheduler", "peer", "booking_api", "end_to_end", "ingest")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--quick", action="store_true", help="tiny sizes: that every benchmark runs")
    form.add_argument("--medium", action="store_true", help="reduced sizes, labelled in the results")
    parser.add_argument("--scale", default=None, help="scheduler ledger sizes, e.g. 10000,100000,1000000")
    parser.add_argument("--instances", default=None, help="notifier instances to compare, e.g. 1,2,4")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"some of {','.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--keep-workdir", action="store_true",
                        help="keep the logs and data of the run (kept anyway when a benchmark fails)")
    args = parser.parse_args()

    subprocess.run(["bash", str(HERE / "setup.sh")], check=True)
    # The dispatcher run inside this process (channels) logs warnings only; the services log as deployed.
    configure_logging("WARNING", json=True)
    form_name = "quick" if args.quick else "medium" if args.medium else "full"
    scales = [int(n) for n in args.scale.split(",")] if args.scale else None
    instances = tuple(int(n) for n in args.instances.split(",")) if args.instances else None
    wanted = [name for name in args.only.split(",") if name]
    benchmarks: dict[str, Callable[[Stack], dict[str, Any]]] = {
        "channels": lambda stack: uvloop.run(channels.run(stack, form_name)),
        "booking_api": lambda stack: booking_api.run(stack, form_name),
        "end_to_end": lambda stack: end_to_end.run(stack, form_name),
        "scheduler": lambda stack: scheduler_scale.run(stack, form_name, scales, instances),
        "peer": lambda stack: peer_celery.run(stack, form_name),
        "ingest": lambda stack: ingest.run(stack, form_name),
    }
    results: dict[str, Any] = {
        "form": form_name, "command": " ".join(["bench/run_all.py", *sys.argv[1:]]),
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine.describe(),
        "sections": {}, "load_average_by_section": {}, "failed": {},
    }
    print(f"machine: {json.dumps(results['machine'])}", flush=True)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="clinic-bench-"))
    stack = Stack(workdir)
    try:
        for name in wanted:
            section_started = time.monotonic()
            results["load_average_by_section"][name] = machine.load_average()
            print(f"--- {name} (load average {results['load_average_by_section'][name]})", flush=True)
            try:
                results["sections"][name] = benchmarks[name](stack)
            except Exception as error:  # the others still run and are reported; the exit code says so
                results["failed"][name] = f"{type(error).__name__}: {str(error)[:2000]}"
                print(f"--- {name} failed: {results['failed'][name]}", flush=True)
                continue
            print(json.dumps(results["sections"][name], default=str), flush=True)
            print(f"--- {name}: {time.monotonic() - section_started:.0f} s", flush=True)
    finally:
        stack.close()
        if not args.keep_workdir and not results["failed"]:
            shutil.rmtree(workdir, ignore_errors=True)
        else:  # a failed section's logs are what tells why
            print(f"logs and data kept in {workdir}")
    results["duration_s"] = time.monotonic() - started
    results["load_average_end"] = machine.load_average()
    report.write(results, args.out)
    print(f"wrote {args.out / 'RESULTS.md'}")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
