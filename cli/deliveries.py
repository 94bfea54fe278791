"""`clinic-notify scheduled` and `status`: what the delivery ledger holds, without recipients."""
from __future__ import annotations

from typing import Annotated, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from cli.options import DEFAULT_CONFIG, ClinicConfigFile, DatabaseUrl
from cli.output import local_time, stdout
from cli.reading import clinic_time_zone, read_database
from shared.ledger.model import Delivery
from shared.ledger.reports import LedgerStatus, ledger_status, scheduled
from shared.observability import redact_text

T = TypeVar("T")


LEDGER = "the delivery ledger"


def register(app: typer.Typer) -> None:
    app.command("scheduled")(show_scheduled)
    app.command("status")(show_status)


def show_scheduled(
    database_url: DatabaseUrl,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 50,
    appointment: Annotated[str | None, typer.Option(
        help="Every message of this appointment id, in any status.")] = None,
    clinic_config: ClinicConfigFile = DEFAULT_CONFIG,
) -> None:
    """What is scheduled: due time (clinic time), appointment, step, channel, template, status, attempts."""
    time_zone = clinic_time_zone(clinic_config)
    rows = read_database(database_url, lambda engine: scheduled(engine, limit, appointment), LEDGER)
    stdout().print(_scheduled_table(rows, time_zone))


def show_status(
    database_url: DatabaseUrl,
    failed_limit: Annotated[int, typer.Option(min=1, help="At most this many failed messages.")] = 50,
    clinic_config: ClinicConfigFile = DEFAULT_CONFIG,
) -> None:
    """Messages by status, the oldest pending due time and the failed messages with their errors."""
    time_zone = clinic_time_zone(clinic_config)
    status = read_database(database_url, lambda engine: ledger_status(engine, failed_limit), LEDGER)
    _print_status(status, time_zone)


def _scheduled_table(rows: list[Delivery], time_zone: str) -> Table:
    table = Table("due", "appointment", "step", "channel", "template", "status", "attempts",
                  title=f"Scheduled messages (due times in {time_zone})")
    for row in rows:
        table.add_row(local_time(row.due_at, time_zone), Text(row.appointment_id), Text(row.step),
                      row.channel, Text(row.template), row.status.value, str(row.attempts))
    return table


def _print_status(status: LedgerStatus, time_zone: str) -> None:
    console = stdout()
    counts = Table("status", "messages", title="Messages by status")
    for name, count in sorted(status.counts.items()):
        counts.add_row(name, str(count))
    counts.add_row("total", str(sum(status.counts.values())), style="bold")
    console.print(counts)
    console.print(f"Oldest pending message due: {local_time(status.oldest_pending_due, time_zone)}", markup=False)
    if not status.failed:
        console.print("No failed messages.")
        return
    failed = Table("failed at", "appointment", "step", "channel", "template", "error code", "reason",
                   title="Failed messages (newest first)")
    for row in status.failed:
        failed.add_row(local_time(row.updated_at, time_zone), Text(row.appointment_id), Text(row.step),
                       row.channel, Text(row.template), row.error_code or "—", Text(redact_text(row.reason or "—")))
    console.print(failed)
