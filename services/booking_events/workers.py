"""The booking service's background parts as workers: each runs until the service is told to stop."""
from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from services.booking_events.store import BookingStore
from shared.clock import Clock
from shared.observability import get_logger
from shared.outbox.relay import outbox_relay_worker as outbox_relay_worker  # the shared factory
from shared.process import Worker

log = get_logger(__name__)

KEY_PURGE_INTERVAL_S = 3600


def idempotency_purge_worker(store: BookingStore, clock: Clock, retention: timedelta) -> Worker:
    """Forgets idempotency keys older than `retention`, once an hour until `stop`."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                forgotten = await store.forget_responses_before(clock.now() - retention)
                if forgotten:
                    log.info("idempotency_keys_forgotten", count=forgotten)
            except Exception as error:  # retried at the next interval; keys merely live longer
                log.warning("idempotency_purge_failed", error=type(error).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), KEY_PURGE_INTERVAL_S)

    return Worker("idempotency-purge", run)
