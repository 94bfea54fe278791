"""Where the CLI writes, and how it stops with a meaningful exit code."""
from __future__ import annotations

import sys
from datetime import datetime
from typing import NoReturn
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape

# Exit codes (typer itself uses 2 for a wrong command line).
INVALID = 1  # what was checked or asked for is wrong: a config file, a template name
UNAVAILABLE = 3  # the database or the broker could not be reached or read

_WIDE_ENOUGH = 200  # when piped or captured, don't squeeze tables into 80 columns


def stdout() -> Console:
    return Console(width=None if sys.stdout.isatty() else _WIDE_ENOUGH, highlight=False)


def stderr() -> Console:
    return Console(stderr=True, width=None if sys.stderr.isatty() else _WIDE_ENOUGH, highlight=False)


def fail(message: str, code: int = INVALID) -> NoReturn:
    stderr().print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def local_time(moment: datetime | None, time_zone: str) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(ZoneInfo(time_zone)).strftime("%Y-%m-%d %H:%M:%S %Z")
