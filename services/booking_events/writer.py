"""The process's writer of appointment commands: those that arrive while a batch is being written
wait together and go in the next one, in one transaction.

A request then costs its share of a handful of statements instead of a transaction of its own, and on
SQLite, whose single write lock admits one writer at a time, the requests no longer queue for it one by
one. Order is kept: commands are written in the order they arrived.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from services.booking_events.domain.commands import AppointmentCommand
from services.booking_events.domain.idempotency import IdempotencyKey
from services.booking_events.domain.refusals import AppointmentRefusal
from services.booking_events.handlers import (
    BatchNotApplied,
    Outcome,
    Queued,
    apply_commands,
    handle_command,
    replayed,
)
from services.booking_events.store import BookingStore
from shared.clock import Clock
from shared.observability import get_logger

log = get_logger(__name__)


@dataclass
class CommandWriter:
    store: BookingStore
    clock: Clock
    batch_size: int = 100
    on_batch: Callable[[int], None] = lambda _size: None  # told the size of each batch written
    _waiting: list[tuple[Queued, asyncio.Future[Outcome]]] = field(default_factory=list)
    _writing: asyncio.Task[None] | None = None

    async def apply(
        self, command: AppointmentCommand, success_status: int, key: IdempotencyKey | None = None
    ) -> Outcome:
        """Apply the command once per idempotency key (a retry gets the first response back).

        Raises AppointmentRefusal, IdempotencyKeyReused, or ConcurrentChange when the appointment
        kept changing under us.
        """
        if key is not None and (stored := await self.store.find_response(key)) is not None:
            return replayed(stored, key)
        outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((Queued(command, success_status, key), outcome))
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_waiting(), name="booking-command-writer")
        return await outcome

    async def _write_waiting(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self.batch_size]
                del self._waiting[: self.batch_size]
                self.on_batch(len(batch))
                await self._write(batch)
        finally:
            self._writing = None

    async def _write(self, batch: list[tuple[Queued, asyncio.Future[Outcome]]]) -> None:
        now = self.clock.now()
        try:
            outcomes = await apply_commands(self.store, [item for item, _ in batch], now)
        except BatchNotApplied as why:
            log.info("command_batch_applied_one_by_one", commands=len(batch), reason=str(why))
            for item, outcome in batch:
                await _settle(outcome, handle_command(self.store, item.command, now, item.success_status, item.key))
            return
        except BaseException as error:  # the database failed: each request of the batch answers it
            for _, outcome in batch:
                _fail(outcome, error)
            if not isinstance(error, Exception):
                raise
            return
        for (item, outcome), result in zip(batch, outcomes, strict=True):
            # A concurrent retry with our key may have made the change we are now refused.
            if (isinstance(result, AppointmentRefusal) and item.key is not None
                    and (stored := await self.store.find_response(item.key)) is not None):
                result = replayed(stored, item.key)
            if isinstance(result, Outcome):
                if not outcome.done():
                    outcome.set_result(result)
            else:
                _fail(outcome, result)


async def _settle(outcome: asyncio.Future[Outcome], applying: Awaitable[Outcome]) -> None:
    try:
        result = await applying
    except Exception as error:
        _fail(outcome, error)
    else:
        if not outcome.done():
            outcome.set_result(result)


def _fail(outcome: asyncio.Future[Outcome], error: BaseException) -> None:
    if not outcome.done():
        outcome.set_exception(error)
