"""Each chaos scenario's figures, kept per scale in bench/results/chaos.json and shown in chaos.md.

A run replaces the figures of the scenarios it ran, at its scale; the other scales' tables stay.
"""
from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
COLUMNS = ("scenario", "events", "expected messages", "lost", "duplicated email (unknown-outcome resends)",
           "duplicated SMS", "dead-lettered", "recovery (s)", "faults")


@dataclass
class ScenarioFigures:
    scenario: str
    events: int
    expected_messages: int
    lost: int
    duplicated_email: int
    duplicated_sms: int
    unknown_outcome_resends: int = 0
    dead_lettered: str = "–"
    recovery_s: float | None = None
    faults: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> list[str]:
        recovery = "–" if self.recovery_s is None else f"{self.recovery_s:.1f}"
        return [self.scenario, str(self.events), str(self.expected_messages), str(self.lost),
                f"{self.duplicated_email} ({self.unknown_outcome_resends})", str(self.duplicated_sms),
                self.dead_lettered, recovery, self.faults]


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "python": sys.version.split()[0]}


def write(scale: str, figures: list[ScenarioFigures], command: str) -> None:
    if not figures:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS / "chaos.json"
    stored: dict[str, Any] = json.loads(json_path.read_text()) if json_path.exists() else {}
    run = stored.get(scale, {"scenarios": {}})
    run["scenarios"].update({f.scenario: asdict(f) for f in figures})
    run.update(command=command, machine=machine(), finished_at=datetime.now(UTC).isoformat(timespec="seconds"))
    stored[scale] = run
    json_path.write_text(json.dumps(stored, indent=2, ensure_ascii=False) + "\n")
    (RESULTS / "chaos.md").write_text(render(stored))


def render(stored: dict[str, Any]) -> str:
    lines = ["# Chaos suite results", "",
             "Written by `tests/chaos` (tests/chaos/report.py) at the end of each run; one table per scale.",
             "lost = expected (appointment, template, channel) never received; duplicated = received more than",
             "once; the email duplicates must not exceed the notifier's unknown-outcome resends (in brackets).", ""]
    for scale in ("long", "medium", "short"):
        if scale not in stored:
            continue
        run = stored[scale]
        box = run["machine"]
        lines += [f"## {scale}", "",
                  f"`{run['command']}` — finished {run['finished_at']}; {box['nproc']} CPUs, {box['cpu']}, "
                  f"Python {box['python']}", "",
                  "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for name in sorted(run["scenarios"]):
            lines.append("| " + " | ".join(ScenarioFigures(**run["scenarios"][name]).row()) + " |")
        lines.append("")
    return "\n".join(lines)
