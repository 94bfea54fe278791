"""Options several commands share, with their environment defaults."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shared.settings import DEFAULT_CLINIC_CONFIG

DatabaseUrl = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar="NOTIFIER_DATABASE_URL",
        help="SQLAlchemy URL of the delivery ledger, e.g. sqlite+aiosqlite:///notifier.db.",
        show_envvar=True,
    ),
]
BootstrapServers = Annotated[
    str,
    typer.Option(
        "--bootstrap-servers",
        envvar="KAFKA_BOOTSTRAP_SERVERS",
        help="Kafka broker(s), HOST:PORT[,HOST:PORT].",
        show_envvar=True,
    ),
]
ClinicConfigFile = Annotated[
    Path,
    typer.Option(
        "--clinic-config",
        envvar="CLINIC_CONFIG_FILE",
        help="The clinic's configuration file.",
        show_envvar=True,
        dir_okay=False,
    ),
]
DEFAULT_CONFIG = DEFAULT_CLINIC_CONFIG
