"""What every service process does the same way: stop on a signal, serve metrics."""
from __future__ import annotations

import asyncio
import signal

from prometheus_client import start_http_server


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


def serve_metrics(port: int | None) -> None:
    if port:
        start_http_server(port, addr="127.0.0.1")
