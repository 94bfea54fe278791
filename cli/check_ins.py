"""`clinic-notify check-ins`: how patients are doing after their visits, for clinic staff.

Shows each check-in with its score and what the system did with the answer; silence after the last
check-in shows as `no_reply`. Appointment ids only: staff look the patient up in the booking system.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from cli.options import DEFAULT_CONFIG, ClinicConfigFile
from cli.output import local_time, stdout
from cli.reading import clinic_time_zone, read_database
from services.aftercare.views import recent_check_ins


class CheckInStatus(StrEnum):
    scheduled = "scheduled"
    answered = "answered"
    closed = "closed"
    no_reply = "no_reply"


def register(app: typer.Typer) -> None:
    app.command("check-ins")(show_check_ins)


def show_check_ins(
    database_url: Annotated[str, typer.Option("--database-url", envvar="AFTERCARE_DATABASE_URL", show_envvar=True,
                                              help="SQLAlchemy URL of the aftercare database.")],
    status: Annotated[CheckInStatus | None, typer.Option(help="Only check-ins in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows, newest first.")] = 50,
    clinic_config: ClinicConfigFile = DEFAULT_CONFIG,
) -> None:
    """Check-ins after visits: due time, status, score, and the action taken on the last reply."""
    time_zone = clinic_time_zone(clinic_config)
    rows = read_database(database_url, lambda engine: recent_check_ins(engine, status, limit),
                         "the aftercare database")
    table = Table("due", "appointment", "round", "status", "score", "via", "unreadable", "last action",
                  title=f"Aftercare check-ins (times in {time_zone})")
    for row in rows:
        table.add_row(local_time(row.due_at, time_zone), Text(row.appointment_id), f"{row.round}/{row.rounds}",
                      row.status, "" if row.score is None else str(row.score), row.answered_via or "",
                      str(row.unreadable_replies), row.last_action or "")
    stdout().print(table)

