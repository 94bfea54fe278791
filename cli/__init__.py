"""`clinic-notify`: the operator and staff command line (one module per command group)."""
from __future__ import annotations

import typer

from cli import (
    api_documents,
    check_ins,
    config_check,
    consumer_lag,
    contract,
    database,
    dead_letter_commands,
    deliveries,
    escalations,
    preview,
    trajectory,
)

app = typer.Typer(
    name="clinic-notify",
    help="Operate clinic-notify: preview messages, inspect the delivery ledger and the Kafka topics.",
    no_args_is_help=True,
    add_completion=False,
    # A traceback's local variables may hold recipients or message bodies: never print them.
    pretty_exceptions_show_locals=False,
)

for module in (preview, deliveries, check_ins, dead_letter_commands, consumer_lag, contract, config_check,
               api_documents):
    module.register(app)
escalations.register(app)
database.register(app)
trajectory.register(app)

__all__ = ["app"]
