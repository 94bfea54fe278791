"""`clinic-notify dead-letters`: events the consumers could not accept, and why; bodies stay hidden."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from rich.table import Table
from rich.text import Text

from cli.kafka_reading import newest_records
from cli.options import BootstrapServers
from cli.output import INVALID, UNAVAILABLE, fail, stdout
from shared.topics import APPOINTMENTS_DEAD_LETTER


def register(app: typer.Typer) -> None:
    app.command("dead-letters")(dead_letters)


def dead_letters(
    bootstrap_servers: BootstrapServers,
    topic: Annotated[str, typer.Option(help="The dead-letter topic.")] = APPOINTMENTS_DEAD_LETTER,
    limit: Annotated[int, typer.Option(min=1, help="Show the newest N.")] = 50,
    show_body: Annotated[bool, typer.Option(
        "--show-body", help="Also print each body (may hold patient data).")] = False,
) -> None:
    """Read a dead-letter topic without joining a consumer group: offset, time, key, reason, source."""
    try:
        records, total = asyncio.run(newest_records(bootstrap_servers, topic, limit))
    except LookupError as error:
        fail(str(error).strip("'\""), INVALID)
    except (KafkaError, OSError) as error:
        fail(f"cannot read {topic} from {bootstrap_servers}: {error!r}", UNAVAILABLE)
    table = Table("partition:offset", "time (UTC)", "key", "dlq-reason", "dlq-detail", "source", "group",
                  title=f"{topic}: {len(records)} of {total} (newest)")
    for record in records:
        table.add_row(*_row(record))
    console = stdout()
    console.print(table)
    if show_body:  # unwrapped, below the table, so a JSON body can be copied whole
        for record in records:
            console.print(f"\n--- body of {record.partition}:{record.offset} ---", markup=False)
            console.print(record.value.decode("utf-8", "replace") if record.value else "", markup=False, soft_wrap=True)


def _row(record: ConsumerRecord) -> list[str | Text]:
    headers = {name: value.decode("utf-8", "replace") for name, value in record.headers or ()}
    source = "—"
    if "dlq-source-topic" in headers:
        source = (f"{headers['dlq-source-topic']} {headers.get('dlq-source-partition', '?')}:"
                  f"{headers.get('dlq-source-offset', '?')}")
    return [
        f"{record.partition}:{record.offset}",
        datetime.fromtimestamp(record.timestamp / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"),
        Text(record.key.decode("utf-8", "replace") if record.key else "—"),
        Text(headers.get("dlq-reason", "—")),
        Text(headers.get("dlq-detail", "—")),
        Text(source),
        Text(headers.get("dlq-consumer-group", "—")),
    ]
