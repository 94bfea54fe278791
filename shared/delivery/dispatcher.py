"""Sends every recorded message once it is due, retrying transient failures with backoff."""
from __future__ import annotations

import asyncio
from datetime import timedelta

from shared.channels.messages import (
    DeliveryError,
    EmailSender,
    PermanentDeliveryError,
    SmsSender,
    TransientDeliveryError,
)
from shared.clock import Clock
from shared.delivery.compose import MessageComposer
from shared.delivery.retry import RetryPolicy
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.model import Delivery, DeliveryStatus
from shared.ledger.suppressions import SuppressionList
from shared.observability import DELIVERIES, DISPATCH_DELAY, LEDGER_BACKLOG, get_logger

OPTED_OUT_CODE = "21610"
BACKLOG_REPORT_INTERVAL_SECONDS = 15.0
log = get_logger(__name__)


class Dispatcher:
    def __init__(
        self,
        *,
        service: str,
        ledger: DeliveryLedger,
        composer: MessageComposer,
        email: EmailSender,
        sms: SmsSender,
        suppressions: SuppressionList,
        clock: Clock,
        retry: RetryPolicy = RetryPolicy(),
        batch_size: int = 100,
        concurrency: int = 8,
        lease: timedelta = timedelta(seconds=60),
        idle_poll: timedelta = timedelta(seconds=1),
    ) -> None:
        self.service = service
        self.ledger = ledger
        self.composer = composer
        self.email = email
        self.sms = sms
        self.suppressions = suppressions
        self.clock = clock
        self.retry = retry
        self.batch_size = batch_size
        self.lease = lease
        self.idle_poll = idle_poll
        self._slots = asyncio.Semaphore(concurrency)
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """Called when something new may be due now; saves waiting for the next poll."""
        self._wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        next_report = loop.time()
        while not stop.is_set():
            try:
                handled = await self.dispatch_due()
                if loop.time() >= next_report:
                    await self.report_backlog()
                    next_report = loop.time() + BACKLOG_REPORT_INTERVAL_SECONDS
            except Exception:
                log.exception("dispatch_round_failed")
                handled = 0
            if handled >= self.batch_size:
                continue
            await self._sleep_until_next(stop)

    async def _sleep_until_next(self, stop: asyncio.Event) -> None:
        timeout = self.idle_poll.total_seconds()
        next_due = await self.ledger.next_due_at()
        if next_due is not None:
            timeout = max(0.0, min(timeout, (next_due - self.clock.now()).total_seconds()))
        self._wakeup.clear()
        waiters = [asyncio.ensure_future(self._wakeup.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def report_backlog(self) -> None:
        """What operators graph: how many messages are pending, sending, sent, failed..."""
        counts = await self.ledger.counts_by_status()
        for status in DeliveryStatus:
            LEDGER_BACKLOG.labels(self.service, status.value).set(counts.get(status.value, 0))

    async def dispatch_due(self) -> int:
        claimed = await self.ledger.claim_due(self.clock.now(), self.batch_size, self.lease)
        await asyncio.gather(*(self._deliver_with_slot(delivery) for delivery in claimed))
        return len(claimed)

    async def _deliver_with_slot(self, delivery: Delivery) -> None:
        async with self._slots:
            await self._deliver(delivery)

    async def _deliver(self, delivery: Delivery) -> None:
        now = self.clock.now()
        if delivery.expires_at is not None and now >= delivery.expires_at:
            await self._skip(delivery, "appointment_started")
            return
        if await self.suppressions.is_suppressed(delivery.channel, delivery.recipient):
            await self._skip(delivery, "opted_out")
            return
        try:
            provider_id = await self._send(delivery)
        except PermanentDeliveryError as error:
            await self._fail(delivery, error)
            if delivery.channel == "sms" and error.code == OPTED_OUT_CODE:
                await self.suppressions.suppress("sms", delivery.recipient, "carrier_opt_out", now)
        except TransientDeliveryError as error:
            await self._retry_or_give_up(delivery, error)
        except Exception as error:  # a template or programming error must not block the queue
            log.exception("delivery_crashed", delivery_id=delivery.id, error_type=type(error).__name__)
            await self._retry_or_give_up(delivery, TransientDeliveryError(type(error).__name__))
        else:
            sent_at = self.clock.now()
            await self.ledger.mark_sent(delivery.id, provider_id, sent_at)
            DELIVERIES.labels(self.service, delivery.channel, delivery.template, "sent").inc()
            DISPATCH_DELAY.labels(self.service, delivery.channel).observe(
                max(0.0, (sent_at - delivery.scheduled_for).total_seconds())
            )
            log.info("message_sent", delivery_id=delivery.id, channel=delivery.channel,
                     template=delivery.template, step=delivery.step, attempt=delivery.attempts)

    async def _send(self, delivery: Delivery) -> str:
        if delivery.channel == "email":
            return await self.email.send(self.composer.email(delivery, self.clock.now()))
        return await self.sms.send(self.composer.sms(delivery))

    async def _skip(self, delivery: Delivery, reason: str) -> None:
        await self.ledger.mark_skipped(delivery.id, reason, self.clock.now())
        DELIVERIES.labels(self.service, delivery.channel, delivery.template, "skipped").inc()
        log.info("message_skipped", delivery_id=delivery.id, reason=reason, step=delivery.step)

    async def _fail(self, delivery: Delivery, error: DeliveryError) -> None:
        await self.ledger.mark_failed(delivery.id, error.reason, error.code, self.clock.now())
        DELIVERIES.labels(self.service, delivery.channel, delivery.template, "failed").inc()
        log.warning("message_failed", delivery_id=delivery.id, channel=delivery.channel,
                    code=error.code, reason=error.reason)

    async def _retry_or_give_up(self, delivery: Delivery, error: DeliveryError) -> None:
        if self.retry.gives_up_after(delivery.attempts):
            reason = f"gave up after {delivery.attempts} attempts: {error.reason}"
            await self._fail(delivery, PermanentDeliveryError(reason, error.code))
            return
        due_at = self.clock.now() + self.retry.delay_after(delivery.attempts)
        await self.ledger.retry_later(delivery.id, due_at, error.reason, error.code, self.clock.now())
        DELIVERIES.labels(self.service, delivery.channel, delivery.template, "retry").inc()
        log.warning("message_retry_scheduled", delivery_id=delivery.id, channel=delivery.channel,
                    code=error.code, reason=error.reason, attempt=delivery.attempts)
