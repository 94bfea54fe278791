"""Sends every recorded message once it is due, retrying transient failures for as long as the
message is useful.

- Claims only what it can send now: per channel, as many due rows as will have a provider call
  (SMTP connection, SMS send) within the next few calls (`shared/delivery/lanes.py`). The claim is
  the check before the provider call: the row is still due (not cancelled), the recipient not opted
  out (staff messages aside), and the lease runs from it. A message that waited for its call longer
  than a quarter of the lease is checked again. Each claim carries a token; only its holder records
  the outcome, so a dispatcher whose lease ran out changes nothing.
- A row reclaimed after a lease ran out may already have gone out: an SMS is first looked up at
  the provider; an email keeps its Message-ID. Resends with an unknown outcome are counted.
- An account-wide error (credentials refused) pauses the channel without charging the message an
  attempt; the channel is probed with capped backoff and resumes after a successful send. Messages
  already checked and waiting for the channel go back to the ledger untried.
- The ledger's writes of concurrent sends share transactions (`DeliveryLedger`'s group commit).
- A failing round (database unavailable) is logged and retried with capped backoff: the loop
  only ends when told to stop.
- Each outcome is recorded with what goes with it, in one transaction (`DeliveryOutcomes`): its
  event, and the fallback on the other channel when the message cannot reach the patient on its
  own (an email refused with a 5xx; an SMS to a landline, skipped without being tried).
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.channels.messages import (
    ChannelUnavailableError,
    DeliveryError,
    EmailMessage,
    EmailSender,
    OutcomeUnknownError,
    PermanentDeliveryError,
    SmsHistory,
    SmsMessage,
    SmsSender,
    TransientDeliveryError,
)
from shared.clock import Clock
from shared.delivery.compose import MessageComposer
from shared.delivery.fallback import LANDLINE, is_landline
from shared.delivery.lanes import Lane
from shared.delivery.metrics import (
    CHANNEL_PAUSED,
    LEDGER_DUE,
    LEDGER_OLDEST_DUE_AGE,
    STAFF_UNDELIVERED,
    UNKNOWN_OUTCOME_RESENDS,
)
from shared.delivery.outcomes import DeliveryOutcomes
from shared.delivery.retry import RetryPolicy
from shared.ledger.ledger import AttemptStart, Claimed, DeliveryLedger
from shared.ledger.model import CHANNELS, Delivery, DeliveryStatus, is_staff_template
from shared.ledger.suppressions import SuppressionList
from shared.observability import DELIVERIES, DISPATCH_DELAY, LEDGER_BACKLOG, get_logger

OPTED_OUT_CODE = "21610"
BACKLOG_REPORT_INTERVAL_SECONDS = 15.0
# Twilio's DateSent is the provider's clock, not ours: look a little before our attempt began.
PROVIDER_CLOCK_SKEW = timedelta(minutes=1)
log = get_logger(__name__)


@dataclass(frozen=True)
class _Pause:
    until: datetime
    delay: timedelta
    error: DeliveryError


class _ChannelPausedMeanwhile(Exception):
    """The channel was paused while this message waited for it: it goes back untried."""


class _NoLongerWanted(Exception):
    """Checked again after a long wait for its call, the message was not to be sent any more."""


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
        channel_limits: Mapping[str, int] | None = None,
        concurrency: int = 8,
        batch_size: int = 100,
        lease: timedelta = timedelta(seconds=60),
        idle_poll: timedelta = timedelta(seconds=0.5),
        max_round_backoff: timedelta = timedelta(seconds=30),
        outcomes: DeliveryOutcomes | None = None,
    ) -> None:
        """`channel_limits`: provider calls in flight per channel (default `concurrency` each). A
        provider call must take less than three quarters of the lease (the channels time out after
        10 s): a message that waited more than a quarter of it for its call is checked again first.
        `idle_poll`: how often it looks in the ledger when nothing told it of a new message (the default
        is DISPATCH_IDLE_POLL_SECONDS's, so a dispatcher built here behaves as a deployed one).
        `outcomes`: what is recorded with each outcome (default: fallbacks, no events)."""
        self.service = service
        self.ledger = ledger
        self.composer = composer
        self.email = email
        self.sms = sms
        self.suppressions = suppressions
        self.clock = clock
        self.retry = retry
        self.limits = {channel: (channel_limits or {}).get(channel, concurrency) for channel in CHANNELS}
        self.batch_size = batch_size
        self.lease = lease
        self.idle_poll = idle_poll
        self.max_round_backoff = max_round_backoff
        self.outcomes = outcomes or DeliveryOutcomes(service=service, ledger=ledger)
        self._lanes = {channel: Lane(limit) for channel, limit in self.limits.items()}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pauses: dict[str, _Pause] = {}
        # Channels whose last claim found nothing more due: not asked again before this loop time,
        # unless woken (something new recorded).
        self._quiet_until: dict[str, float] = {}
        self._wakeup = asyncio.Event()
        for channel in CHANNELS:
            CHANNEL_PAUSED.labels(service, channel).set(0)

    def wake(self) -> None:
        """Called when something new may be due now; saves waiting for the next poll."""
        self._quiet_until.clear()
        self._wakeup.set()

    def is_paused(self, channel: str) -> bool:
        return channel in self._pauses

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        next_report = loop.time()
        failed_rounds = 0
        try:
            while not stop.is_set():
                try:
                    self._wakeup.clear()
                    await self._claim_and_start()
                    if loop.time() >= next_report:
                        await self.report_backlog()
                        next_report = loop.time() + BACKLOG_REPORT_INTERVAL_SECONDS
                    if not self._may_claim_now():
                        await self._sleep_until_next(stop)
                    failed_rounds = 0
                except Exception as error:
                    failed_rounds += 1
                    backoff = min(self.max_round_backoff.total_seconds(), 0.5 * 2 ** min(failed_rounds - 1, 16))
                    log.exception("dispatch_round_failed", error_type=type(error).__name__,
                                  failed_rounds=failed_rounds, retry_in_seconds=backoff)
                    await _wait(stop, backoff)
        finally:
            # Sends in flight record their outcome; otherwise it would be unknown until the lease ends.
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def dispatch_due(self) -> int:
        """One round: claim what is due and can be sent now, send it, wait for the outcomes."""
        self._quiet_until.clear()
        tasks = await self._claim_and_start()
        await asyncio.gather(*tasks)
        return len(tasks)

    async def report_backlog(self) -> None:
        """What operators graph: messages by status, and how many are due now and since when."""
        counts = await self.ledger.counts_by_status()
        for status in DeliveryStatus:
            LEDGER_BACKLOG.labels(self.service, status.value).set(counts.get(status.value, 0))
        now = self.clock.now()
        due, oldest = await self.ledger.due_backlog(now)
        LEDGER_DUE.labels(self.service).set(due)
        LEDGER_OLDEST_DUE_AGE.labels(self.service).set(
            max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        )

    # --- claiming ---

    async def _claim_and_start(self) -> list[asyncio.Task[None]]:
        tasks = []
        for channel in CHANNELS:
            now, lane = self.clock.now(), self._lanes[channel]
            wanted = min(self._free_slots(channel, now), self.batch_size)
            if wanted <= 0 or self._is_quiet(channel):
                continue
            started_at = time.perf_counter()
            claimed = await self.ledger.claim_to_send(now, wanted, self.lease, channel)
            # What is claimed is on its way before anything else is asked of the database: a question
            # that fails after the claim must not leave it claimed with no task to send it.
            lane.claimed_now((claim.delivery.id for claim in claimed), time.perf_counter() - started_at)
            for claim in claimed:
                tasks.append(self._start(claim, now))
            if len(claimed) < wanted:
                await self._quiet_until_next_due(channel, now)
        return tasks

    async def _quiet_until_next_due(self, channel: str, now: datetime) -> None:
        """Nothing more is due on `channel`: not asked again before its next due time (at the latest
        after `idle_poll`), unless woken."""
        seconds = self.idle_poll.total_seconds()
        next_due = await self.ledger.next_due_at(channel)
        if next_due is not None and next_due > now:
            seconds = min(seconds, (next_due - now).total_seconds())
        self._quiet_until[channel] = asyncio.get_running_loop().time() + seconds

    def _is_quiet(self, channel: str) -> bool:
        return asyncio.get_running_loop().time() < self._quiet_until.get(channel, float("-inf"))

    def _free_slots(self, channel: str, now: datetime) -> int:
        lane = self._lanes[channel]
        pause = self._pauses.get(channel)
        if pause is not None:
            # Paused: nothing before the pause ends, then one message at a time probes the channel.
            return 0 if now < pause.until else 1 - lane.claimed()
        return lane.to_claim()

    def _may_claim_now(self) -> bool:
        now = self.clock.now()
        return any(self._free_slots(channel, now) > 0 and not self._is_quiet(channel) for channel in CHANNELS)

    def _start(self, claim: Claimed, claimed_at: datetime) -> asyncio.Task[None]:
        lane = self._lanes[claim.delivery.channel]
        task = asyncio.create_task(self._deliver_logged(claim, claimed_at))
        self._tasks.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._tasks.discard(done)
            lane.gone(claim.delivery.id)
            self._wakeup.set()

        task.add_done_callback(finished)
        return task

    async def _sleep_until_next(self, stop: asyncio.Event) -> None:
        now, loop_now = self.clock.now(), asyncio.get_running_loop().time()
        timeout = self.idle_poll.total_seconds()
        pauses = [(pause.until - now).total_seconds() for pause in self._pauses.values() if pause.until > now]
        quiet = [until - loop_now for until in self._quiet_until.values() if until > loop_now]
        timeout = min([timeout, *pauses, *quiet])
        waiters = [asyncio.ensure_future(self._wakeup.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # --- one message ---

    async def _deliver_logged(self, claim: Claimed, claimed_at: datetime) -> None:
        try:
            await self._deliver(claim, claimed_at)
        except Exception as error:
            # The row stays claimed: it is taken up again when its lease ends.
            log.exception("delivery_not_recorded", delivery_id=claim.delivery.id, error_type=type(error).__name__)

    async def _deliver(self, claim: Claimed, claimed_at: datetime) -> None:
        delivery, lane = claim.delivery, self._lanes[claim.delivery.channel]
        staff = is_staff_template(delivery.template)
        if self.clock.now() >= self.retry.useful_until(delivery):
            await self._skip(delivery, "expired")
            return
        if claim.opted_out:
            await self._skip(delivery, "opted_out")
            return
        if delivery.channel == "sms" and not staff and is_landline(delivery.recipient):
            await self._skip(delivery, LANDLINE)
            return
        try:
            message = self._compose(delivery)
        except Exception as error:  # a template or programming error must not block the queue
            await self._crashed(delivery, error)
            return
        await lane.wait_for_call(delivery.id)
        try:
            provider_id = await self._call(delivery, lane, message, claimed_at)
        except _NoLongerWanted:
            return
        except _ChannelPausedMeanwhile:
            pause = self._pauses.get(delivery.channel)
            if pause is not None:
                await self.ledger.retry_later(delivery, pause.until, pause.error.reason, pause.error.code,
                                              self.clock.now(), charge_attempt=False)
        except ChannelUnavailableError as error:
            await self._pause_channel(delivery, error)
        except PermanentDeliveryError as error:
            await self._fail(delivery, error)
            if delivery.channel == "sms" and error.code == OPTED_OUT_CODE and not staff:
                await self.suppressions.suppress("sms", delivery.recipient, "carrier_opt_out", self.clock.now())
        except TransientDeliveryError as error:
            await self._retry_or_give_up(delivery, error)
        except Exception as error:  # a programming error must not block the queue
            await self._crashed(delivery, error)
        else:
            await self._record_sent(delivery, provider_id)

    async def _still_wanted(self, delivery: Delivery) -> bool:
        """Checked again: whether the message is still to be sent (the lease runs from now); if not, the
        reason is recorded."""
        started = await self.ledger.begin_attempt(delivery, self.clock.now(), self.lease)
        if started is AttemptStart.OPTED_OUT:
            await self._skip(delivery, "opted_out")
        elif started is not AttemptStart.STARTED:
            log.info("message_no_longer_wanted", delivery_id=delivery.id, step=delivery.step)
        return started is AttemptStart.STARTED

    def _compose(self, delivery: Delivery) -> EmailMessage | SmsMessage:
        if delivery.channel == "email":
            return self.composer.email(delivery, self.clock.now())
        return self.composer.sms(delivery)

    async def _call(
        self, delivery: Delivery, lane: Lane, message: EmailMessage | SmsMessage, claimed_at: datetime
    ) -> str:
        """The provider call, on the call `lane.wait_for_call` gave this message. Durations are read on
        `time.perf_counter`: the event loop's clock may count whole milliseconds (uvloop)."""
        started_at: float | None = None
        try:
            pause = self._pauses.get(delivery.channel)
            if pause is not None and self.clock.now() < pause.until:
                raise _ChannelPausedMeanwhile()
            if self.clock.now() - claimed_at >= self.lease / 4 and not await self._still_wanted(delivery):
                raise _NoLongerWanted()
            started_at = time.perf_counter()
            if isinstance(message, EmailMessage):
                return await self._send_email(delivery, message)
            return await self._send_sms(delivery, message)
        finally:
            lane.call_over(delivery.id, None if started_at is None else time.perf_counter() - started_at)
            self._wakeup.set()

    async def _crashed(self, delivery: Delivery, error: Exception) -> None:
        log.exception("delivery_crashed", delivery_id=delivery.id, error_type=type(error).__name__)
        await self._retry_or_give_up(delivery, TransientDeliveryError(type(error).__name__))

    async def _send_email(self, delivery: Delivery, message: EmailMessage) -> str:
        if delivery.unknown_outcome_since is not None:
            # Same Message-ID as the earlier attempt: a mail client shows a duplicate once.
            UNKNOWN_OUTCOME_RESENDS.labels(self.service, "email").inc()
        return await self.email.send(message)

    async def _send_sms(self, delivery: Delivery, text: SmsMessage) -> str:
        unknown_since = delivery.unknown_outcome_since
        if unknown_since is not None:
            if isinstance(self.sms, SmsHistory):
                # An identical text to this number already on record is another message's, not this one's.
                recorded = await self.ledger.provider_ids_to(delivery.channel, delivery.recipient)
                found = await self.sms.find_sent(text, unknown_since - PROVIDER_CLOCK_SKEW, recorded)
                if found is not None:
                    log.info("message_found_already_sent", delivery_id=delivery.id, channel="sms")
                    return found
            UNKNOWN_OUTCOME_RESENDS.labels(self.service, "sms").inc()
        return await self.sms.send(text)

    async def _record_sent(self, delivery: Delivery, provider_id: str) -> None:
        sent_at = self.clock.now()
        self._resume(delivery.channel)
        also = self.outcomes.also(delivery, source="dispatcher", status="sent", now=sent_at)
        if not await self.ledger.mark_sent(delivery, provider_id, sent_at, also):
            log.warning("claim_lost_before_recording", delivery_id=delivery.id, outcome="sent")
            return
        DELIVERIES.labels(self.service, delivery.channel, delivery.template, "sent").inc()
        DISPATCH_DELAY.labels(self.service, delivery.channel).observe(
            max(0.0, (sent_at - delivery.scheduled_for).total_seconds())
        )
        log.info("message_sent", delivery_id=delivery.id, channel=delivery.channel,
                 template=delivery.template, step=delivery.step, attempt=delivery.attempts)

    async def _skip(self, delivery: Delivery, reason: str) -> None:
        now = self.clock.now()
        also = self.outcomes.also(delivery, source="dispatcher", status="skipped", reason=reason, now=now)
        if not await self.ledger.mark_skipped(delivery, reason, now, also):
            return
        DELIVERIES.labels(self.service, delivery.channel, delivery.template, "skipped").inc()
        log.info("message_skipped", delivery_id=delivery.id, reason=reason, step=delivery.step)
        self._alert_if_staff(delivery, reason)

    async def _fail(self, delivery: Delivery, error: DeliveryError) -> None:
        now = self.clock.now()
        also = self.outcomes.also(delivery, source="dispatcher", status="failed", error_code=error.code, now=now)
        if not await self.ledger.mark_failed(delivery, error.reason, error.code, now, also):
            return
        DELIVERIES.labels(self.service, delivery.channel, delivery.template, "failed").inc()
        log.warning("message_failed", delivery_id=delivery.id, channel=delivery.channel,
                    code=error.code, reason=error.reason)
        self._alert_if_staff(delivery, error.reason)

    def _alert_if_staff(self, delivery: Delivery, reason: str) -> None:
        if not is_staff_template(delivery.template):
            return
        STAFF_UNDELIVERED.labels(self.service, delivery.channel).inc()
        log.error("staff_message_undelivered", delivery_id=delivery.id, channel=delivery.channel,
                  template=delivery.template, step=delivery.step, reason=reason)

    async def _retry_or_give_up(self, delivery: Delivery, error: DeliveryError) -> None:
        now = self.clock.now()
        due_at = self.retry.next_attempt(delivery, now)
        if due_at is None:
            reason = f"gave up after {delivery.attempts} attempts, no longer useful: {error.reason}"
            await self._fail(delivery, PermanentDeliveryError(reason, error.code))
            return
        if isinstance(error, OutcomeUnknownError):
            recorded = await self.ledger.retry_after_unknown_outcome(delivery, due_at, error.reason, error.code, now)
        else:
            recorded = await self.ledger.retry_later(delivery, due_at, error.reason, error.code, now)
        if not recorded:
            return
        DELIVERIES.labels(self.service, delivery.channel, delivery.template, "retry").inc()
        log.warning("message_retry_scheduled", delivery_id=delivery.id, channel=delivery.channel,
                    code=error.code, reason=error.reason, attempt=delivery.attempts)

    # --- channel pauses ---

    async def _pause_channel(self, delivery: Delivery, error: DeliveryError) -> None:
        channel, now = delivery.channel, self.clock.now()
        pause = self._pauses.get(channel)
        if pause is None:
            pause = _Pause(now + self.retry.first_delay, self.retry.first_delay, error)
            CHANNEL_PAUSED.labels(self.service, channel).set(1)
            log.error("channel_paused", channel=channel, code=error.code, reason=error.reason,
                      retry_in_seconds=pause.delay.total_seconds())
        elif now >= pause.until:  # the probe failed too: wait longer
            delay = min(pause.delay * 2, self.retry.max_delay)
            pause = _Pause(now + delay, delay, error)
        self._pauses[channel] = pause
        await self.ledger.retry_later(delivery, pause.until, error.reason, error.code, now, charge_attempt=False)

    def _resume(self, channel: str) -> None:
        if self._pauses.pop(channel, None) is not None:
            CHANNEL_PAUSED.labels(self.service, channel).set(0)
            log.info("channel_resumed", channel=channel)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
