"""`clinic-notify escalations`: worrying answers, who was paged, and who took them.

One row per escalation: its reference (what staff quote in "OK 1234"), the appointment, the reasons,
when it was raised, where it stands in the chain (on-call, backup, lead) and who acknowledged it, when.
Appointment ids only: no patient details.
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
from services.aftercare.views import EscalationRow, recent_escalations

CHAIN = ("on_call", "backup", "lead")


class EscalationStatus(StrEnum):
    open = "open"
    acknowledged = "acknowledged"
    exhausted = "exhausted"


def register(app: typer.Typer) -> None:
    app.command("escalations")(show_escalations)


def current_step(row: EscalationRow) -> str:
    """Where the escalation stands: who was paged last, or how it ended."""
    if row.status == "exhausted":
        return "exhausted: nobody acknowledged"
    last = CHAIN[min(row.paged, len(CHAIN)) - 1] if row.paged else "none"
    return f"{'paged' if row.status == 'open' else 'acknowledged after paging'} {last} ({row.paged}/{len(CHAIN)})"


def show_escalations(
    database_url: Annotated[str, typer.Option("--database-url", envvar="AFTERCARE_DATABASE_URL", show_envvar=True,
                                              help="SQLAlchemy URL of the aftercare database.")],
    status: Annotated[EscalationStatus | None, typer.Option(help="Only escalations in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows, newest first.")] = 50,
    clinic_config: ClinicConfigFile = DEFAULT_CONFIG,
) -> None:
    """Escalations: reference, appointment, reasons, raised at, current step, acknowledged by and at."""
    time_zone = clinic_time_zone(clinic_config)
    rows = read_database(database_url, lambda engine: recent_escalations(engine, status, limit),
                         "the aftercare database")
    table = Table("id", "ref", "appointment", "reasons", "raised", "current step", "acknowledged by",
                  "acknowledged at", title=f"Aftercare escalations (times in {time_zone})")
    for row in rows:
        table.add_row(Text(row.id), row.reference, Text(row.appointment_id or "(unmatched text)"),
                      Text(", ".join(row.reasons)), local_time(row.raised_at, time_zone), current_step(row),
                      row.acknowledged_by or "", local_time(row.acknowledged_at, time_zone)
                      if row.acknowledged_at else "")
    stdout().print(table)
