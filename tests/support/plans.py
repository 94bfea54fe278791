"""What was planned: every schedule planned, by its anchor, whether a service plans it directly or
through a `PlanMemo`."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from shared.scheduling import plan_schedule


def anchors_planned(monkeypatch: pytest.MonkeyPatch, service_module: str) -> list[datetime]:
    """The anchor of every plan made from now on, in order; `service_module` plans with `plan_schedule`
    by its own name (its default when no memo is given)."""
    planned: list[datetime] = []

    def counted(schedule: Any, **asked: Any) -> Any:
        planned.append(asked["anchor"])
        return plan_schedule(schedule, **asked)

    monkeypatch.setattr("shared.scheduling.memo.plan_schedule", counted)
    monkeypatch.setattr(f"{service_module}.plan_schedule", counted)
    return planned
