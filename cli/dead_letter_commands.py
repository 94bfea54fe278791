"""`clinic-notify dead-letters [replay]`: list dead letters, or put the selected ones back on their source topic."""
from __future__ import annotations

import asyncio
import getpass
from datetime import UTC, datetime
from typing import Annotated

import typer
from aiokafka.errors import KafkaError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from cli import dead_letters as listing
from cli.dead_letter_replay import ReplayReport, Selection, replay
from cli.options import BootstrapServers
from cli.output import INVALID, UNAVAILABLE, fail, stderr, stdout
from shared.topics import APPOINTMENTS_DEAD_LETTER

DeadLetterTopic = Annotated[str, typer.Option("--topic", help="The dead-letter topic.")]


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Dead letters: events the consumers could not accept, and why; bodies stay hidden.")
    group.callback(invoke_without_command=True)(show)
    group.command("replay")(replay_dead_letters)
    app.add_typer(group, name="dead-letters")


def show(
    context: typer.Context,
    bootstrap_servers: Annotated[str | None, typer.Option(
        "--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS", show_envvar=True,
        help="Kafka broker(s), HOST:PORT[,HOST:PORT].")] = None,
    topic: DeadLetterTopic = APPOINTMENTS_DEAD_LETTER,
    limit: Annotated[int, typer.Option(min=1, help="Show the newest N.")] = 50,
    show_body: Annotated[bool, typer.Option(
        "--show-body", help="Also print each body (may hold patient data).")] = False,
) -> None:
    """Read a dead-letter topic without joining a consumer group: offset, time, key, reason, source."""
    if context.invoked_subcommand is not None:
        return
    if not bootstrap_servers:
        fail("--bootstrap-servers (or KAFKA_BOOTSTRAP_SERVERS) is required")
    listing.dead_letters(bootstrap_servers, topic, limit, show_body)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _position(text: str) -> tuple[int, int]:
    partition, _, offset = text.partition(":")
    try:
        return int(partition), int(offset)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not PARTITION:OFFSET") from None


def replay_dead_letters(
    bootstrap_servers: BootstrapServers,
    topic: DeadLetterTopic = APPOINTMENTS_DEAD_LETTER,
    reason: Annotated[str | None, typer.Option(help="Only this dlq-reason, e.g. processing_failed.")] = None,
    source_topic: Annotated[str | None, typer.Option(help="Only dead letters read from this topic.")] = None,
    group: Annotated[str | None, typer.Option("--group", help="Only those this consumer group refused.")] = None,
    since: Annotated[datetime | None, typer.Option(help="Dead-lettered at or after (UTC unless an offset is given).")]
    = None,
    until: Annotated[datetime | None, typer.Option(help="Dead-lettered before (UTC unless an offset is given).")]
    = None,
    at: Annotated[list[str] | None, typer.Option(
        "--at", help="Only the dead letter at PARTITION:OFFSET of the dead-letter topic (repeatable).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be replayed; publish nothing.")]
    = False,
) -> None:
    """Republish the selected dead letters to their source topic (key, value, headers less dlq-*), once each.

    Each replay is recorded in the journal topic <topic>.replayed, so running the same replay again, from
    this machine or another, skips what already went back.
    """
    selection = Selection(reason=reason, source_topic=source_topic, consumer_group=group, since=_utc(since),
                          until=_utc(until), positions=frozenset(map(_position, at)) if at else None)
    progress = Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=stderr(), transient=True)
    task = progress.add_task("replay", total=None)

    def advance(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    try:
        with progress:
            report = asyncio.run(replay(bootstrap_servers, topic, selection, by=f"cli:{getpass.getuser()}",
                                        dry_run=dry_run, on_progress=advance))
    except LookupError as error:
        fail(str(error).strip("'\""), INVALID)
    except (KafkaError, OSError, TimeoutError) as error:
        fail(f"cannot replay from {topic} on {bootstrap_servers}: {error!r}", UNAVAILABLE)
    _print(report, topic, dry_run)


def _print(report: ReplayReport, topic: str, dry_run: bool) -> None:
    table = Table("partition:offset", "dead-lettered (UTC)", "key", "dlq-reason", "source", "group", "outcome",
                  title=f"{topic}: {len(report.selected)} selected")
    no_source = {letter.position for letter in report.no_source}
    for letter in report.selected:
        if letter.position in report.replayed:
            outcome = f"replayed to {report.replayed[letter.position]}"
        elif letter.position in report.already:
            earlier = report.already[letter.position]
            outcome = f"already replayed {earlier.replayed_at:%Y-%m-%d %H:%M} by {earlier.by}"
        elif letter.position in no_source:
            outcome = "not replayable: no dlq-source-* headers"
        else:
            outcome = "would be replayed" if dry_run else "not replayed"
        table.add_row(f"{letter.partition}:{letter.offset}", f"{letter.timestamp:%Y-%m-%d %H:%M:%S}",
                      Text(letter.key.decode("utf-8", "replace") if letter.key else "—"), Text(letter.reason or "—"),
                      Text(letter.source_position or "—"), Text(letter.consumer_group or "—"), Text(outcome))
    console = stdout()
    console.print(table)
    if dry_run:
        console.print(f"dry run: {len(report.to_replay)} would be replayed, {len(report.already)} already were, "
                      f"{len(report.no_source)} cannot be")
    else:
        console.print(f"replayed {len(report.replayed)}; {len(report.already)} already were, "
                      f"{len(report.no_source)} cannot be")
