"""The aftercare service's long-running parts as workers: each runs until the service is told to stop."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta

from faststream.kafka import KafkaBroker

from services.aftercare.handlers import NoReplyWatch
from shared.observability import get_logger
from shared.process import Worker

log = get_logger(__name__)


def consumer_worker(broker: KafkaBroker, on_started: Callable[[], None] = lambda: None) -> Worker:
    """Consumes completed visits from the moment the broker starts until `stop`."""

    async def run(stop: asyncio.Event) -> None:
        await broker.start()
        on_started()
        try:
            await stop.wait()
        finally:
            await broker.stop()

    return Worker("consumer", run)


def no_reply_worker(watch: NoReplyWatch, interval: timedelta = timedelta(seconds=1)) -> Worker:
    """Sweeps for silent visits every `interval`; a failed sweep is tried again at the next one."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await watch.sweep()
            except Exception:
                log.exception("no_reply_sweep_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval.total_seconds())

    return Worker("no-reply-watch", run)
