"""`clinic-notify lag`: how far each consumer group is behind, per partition of the appointments topic."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

import typer
from aiokafka.errors import KafkaError
from rich.table import Table

from cli.kafka_reading import (
    admin_client,
    committed_offsets,
    standalone_consumer,
    topic_partitions,
)
from cli.options import BootstrapServers
from cli.output import INVALID, UNAVAILABLE, fail, stdout
from shared.topics import APPOINTMENTS

DEFAULT_GROUPS = ["notifier", "aftercare"]


@dataclass(frozen=True)
class PartitionLag:
    group: str
    partition: int
    committed: int | None  # None: the group never committed on this partition
    end: int

    @property
    def lag(self) -> int | None:
        return None if self.committed is None else max(0, self.end - self.committed)


def register(app: typer.Typer) -> None:
    app.command("lag")(lag)


def lag(
    bootstrap_servers: BootstrapServers,
    group: Annotated[list[str] | None, typer.Option("--group", help="Consumer group (repeatable).")] = None,
    topic: Annotated[str, typer.Option(help="The topic the groups read.")] = APPOINTMENTS,
) -> None:
    """Committed offset, end offset and lag per consumer group and partition."""
    groups = group or DEFAULT_GROUPS
    try:
        rows = asyncio.run(_lags(bootstrap_servers, topic, groups))
    except LookupError as error:
        fail(str(error).strip("'\""), INVALID)
    except (KafkaError, OSError) as error:
        fail(f"cannot read offsets from {bootstrap_servers}: {error!r}", UNAVAILABLE)
    table = Table("group", "partition", "committed", "end", "lag", title=f"Consumer lag on {topic}")
    for row in rows:
        table.add_row(row.group, str(row.partition), _number(row.committed, "no commit"), str(row.end),
                      _number(row.lag, "—"))
    stdout().print(table)


async def _lags(bootstrap_servers: str, topic: str, groups: list[str]) -> list[PartitionLag]:
    async with admin_client(bootstrap_servers) as admin:
        partitions = await topic_partitions(admin, topic)
        committed = {name: await committed_offsets(admin, name, partitions) for name in groups}
    async with standalone_consumer(bootstrap_servers) as consumer:
        ends = await consumer.end_offsets(partitions)
    return [
        PartitionLag(name, partition.partition, _offset(committed[name].get(partition)), ends[partition])
        for name in groups
        for partition in partitions
    ]


def _offset(metadata: object) -> int | None:
    offset = getattr(metadata, "offset", -1)
    return offset if isinstance(offset, int) and offset >= 0 else None


def _number(value: int | None, missing: str) -> str:
    return missing if value is None else str(value)
