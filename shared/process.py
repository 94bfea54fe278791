"""What every service process does the same way: stop on a signal, serve metrics, supervise workers.

A service is a set of workers (a consumer, a dispatcher, an outbox relay, an HTTP server...), each a
coroutine that runs until the service is told to stop. A worker handles its own transient failures
(it retries); a worker that still ends before it was told to stop has died: the service turns its
health red, stops the other workers and exits with an error, so a supervisor (systemd, Kubernetes)
restarts it. Nothing keeps running half-dead while it looks healthy.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import uvicorn
import uvloop
from prometheus_client import start_http_server

from shared.observability import WORKER_UP, get_logger

log = get_logger(__name__)

STOP_GRACE_SECONDS = 10.0
T = TypeVar("T")


@dataclass(frozen=True)
class Worker:
    """A long-running part of a service: `run(stop)` returns only once `stop` is set."""

    name: str
    run: Callable[[asyncio.Event], Awaitable[None]]


@dataclass
class Health:
    """What `/healthz` reports: red as soon as a worker has died."""

    service: str
    dead_workers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.dead_workers

    def worker_died(self, name: str) -> None:
        self.dead_workers.append(name)
        WORKER_UP.labels(self.service, name).set(0)


class WorkerDied(RuntimeError):
    """A worker ended before the service was told to stop."""


async def supervise(workers: Iterable[Worker], stop: asyncio.Event, health: Health) -> None:
    """Run the workers until `stop`; if one dies, health turns red at once, the rest stop, WorkerDied is raised."""
    tasks = {asyncio.create_task(_run(worker, stop, health), name=worker.name): worker for worker in workers}
    for worker in tasks.values():
        WORKER_UP.labels(health.service, worker.name).set(1)
    await stop.wait()
    finished, unfinished = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
    for task in unfinished:
        log.warning("worker_cancelled_at_stop", worker=tasks[task].name)
        task.cancel()
    await asyncio.gather(*unfinished, return_exceptions=True)
    for task in finished:
        WORKER_UP.labels(health.service, tasks[task].name).set(0)
    if health.dead_workers:
        raise WorkerDied(", ".join(health.dead_workers))


async def _run(worker: Worker, stop: asyncio.Event, health: Health) -> None:
    """Run one worker; if it raises, or returns before the service was told to stop, it has died."""
    try:
        await worker.run(stop)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        log.exception("worker_died", worker=worker.name, error_type=type(error).__name__)
    else:
        if stop.is_set():
            return
        log.error("worker_died", worker=worker.name, error_type="returned_before_stop")
    # Health turns red before anything else stops, so a probe sees why the process is going down.
    health.worker_died(worker.name)
    stop.set()


def run_service(main: Coroutine[Any, Any, T]) -> T:
    """Run a service's main coroutine to the end on uvloop: asyncio's API, with the event loop and its
    socket I/O in C (libuv). The same loop uvicorn picks when it runs a server itself; every service
    process (consumers, dispatchers, relays, HTTP) spends much of each message in it.

    What the process has loaded by then (its modules' functions and classes, pydantic's validators:
    about 140,000 objects) lives as long as it does, and is left out of the cycle collector's passes
    (`gc.freeze`). Each full pass walked all of it: 90-150 ms at a time on a 2-core machine, the event
    loop stalled, every request in flight waiting (the booking API's p99 at a few hundred requests a
    second). What the service makes while it runs is collected as usual."""
    gc.collect()
    gc.freeze()
    return uvloop.run(main)


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
    """uvicorn inside a process that handles its own signals: stop it with `should_exit = True`.

    `shared_port`: the port may be shared with other processes listening on it the same way
    (SO_REUSEPORT): the kernel spreads the incoming connections among them.
    """

    def __init__(self, config: uvicorn.Config, shared_port: bool = False) -> None:
        super().__init__(config)
        self.shared_port = shared_port

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        if sockets is None and self.shared_port:
            sockets = [_shared_listening_socket(self.config.host, self.config.port)]
        await super().serve(sockets)


def _shared_listening_socket(host: str, port: int) -> socket.socket:
    # Made with IPPROTO_TCP, as asyncio makes its own: asyncio sets TCP_NODELAY only on sockets that name
    # it (`socket.create_server` leaves it 0), and without it each response waits out a delayed ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def embedded_http_server(
    app: Callable[..., Awaitable[None]], host: str, port: int, run_lifespan: bool = False,
    shared_port: bool = False,
) -> EmbeddedHttpServer:
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False,
        lifespan="on" if run_lifespan else "off",
    )
    return EmbeddedHttpServer(config, shared_port)


def http_worker(name: str, server: EmbeddedHttpServer) -> Worker:
    """An HTTP server as a worker: serves until `stop`, then finishes the requests in flight."""

    async def run(stop: asyncio.Event) -> None:
        serving = asyncio.create_task(server.serve())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        server.should_exit = True
        await serving

    return Worker(name, run)
