"""`clinic-notify check-ins`: how patients are doing after their visits, for clinic staff.

Shows each check-in with its score and what the system did with the answer; silence after the last
check-in shows as `no_reply`. Appointment ids only: staff look the patient up in the booking system.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text
from sqlalchemy import select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aftercare.tables import check_ins, replies
from shared.cli.options import DEFAULT_CONFIG, ClinicConfigFile
from shared.cli.output import local_time, stdout
from shared.cli.reading import clinic_time_zone, read_database


class CheckInStatus(StrEnum):
    scheduled = "scheduled"
    answered = "answered"
    closed = "closed"
    no_reply = "no_reply"


@dataclass(frozen=True)
class CheckInRow:
    appointment_id: str
    round: int
    rounds: int
    due_at: datetime
    status: str
    score: int | None
    answered_via: str | None
    unreadable_replies: int
    last_action: str | None


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
    rows = read_database(database_url, lambda engine: recent_check_ins(engine, status, limit), "the aftercare database")
    table = Table("due", "appointment", "round", "status", "score", "via", "unreadable", "last action",
                  title=f"Aftercare check-ins (times in {time_zone})")
    for row in rows:
        table.add_row(local_time(row.due_at, time_zone), Text(row.appointment_id), f"{row.round}/{row.rounds}",
                      row.status, "" if row.score is None else str(row.score), row.answered_via or "",
                      str(row.unreadable_replies), row.last_action or "")
    stdout().print(table)


async def recent_check_ins(engine: AsyncEngine, status: CheckInStatus | None, limit: int) -> list[CheckInRow]:
    latest_reply = (
        select(replies.c.action)
        .where(replies.c.check_in_id == check_ins.c.id)
        .order_by(replies.c.received_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(check_ins.c.appointment_id, check_ins.c.round, check_ins.c.rounds, check_ins.c.due_at,
               check_ins.c.status, check_ins.c.score, check_ins.c.answered_via, check_ins.c.unreadable_replies,
               latest_reply.label("last_action"))
        .where(check_ins.c.status == status.value if status else true())
        .order_by(check_ins.c.due_at.desc())
        .limit(limit)
    )
    async with engine.connect() as connection:
        return [CheckInRow(**row._asdict()) for row in await connection.execute(query)]
