"""What every service process does the same way: stop on a signal, serve metrics."""
from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

import uvicorn

from prometheus_client import start_http_server


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


def serve_metrics(port: int | None, host: str = "127.0.0.1") -> None:
    if port:
        start_http_server(port, addr=host)


class EmbeddedHttpServer(uvicorn.Server):
    """uvicorn inside a process that handles its own signals: stop it with `should_exit = True`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def embedded_http_server(app: object, host: str, port: int, run_lifespan: bool = False) -> EmbeddedHttpServer:
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False,  # type: ignore[arg-type]
        lifespan="on" if run_lifespan else "off",
    )
    return EmbeddedHttpServer(config)
