"""Builds the notifier from its settings and dependencies, and runs it.

`build` makes every part (database engine, dispatcher, event handler, Kafka subscribers, outbox
relay, web app) and starts nothing; tests pass a fixed clock, their own channels or publisher. `run`
prepares what the parts need outside the process (tables, topics), then supervises the workers: the
consumer (FastStream runs the subscribers while the broker is started), the dispatcher, the outbox
relay (delivery status events) and the web app (/healthz, Twilio's status callbacks). A worker that
ends before `stop` stops the notifier with `WorkerDied`.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier import migrations, tables
from services.notifier.handlers import AppointmentEventHandler
from services.notifier.http import create_web_app
from services.notifier.settings import NotifierSettings
from services.notifier.store import AppointmentStateStore
from shared.channels.email import SmtpEmailSender
from shared.channels.messages import EmailSender, SmsSender
from shared.channels.sms import TwilioSmsSender
from shared.clinic_config import ClinicConfig, load_clinic_config
from shared.clock import Clock, SystemClock
from shared.consumer import EventConsumer, KafkaDeadLetters
from shared.database import create_engine
from shared.delivery.dispatcher import Dispatcher
from shared.delivery.outcomes import DeliveryOutcomes
from shared.delivery.status_reports import ProviderStatusReports
from shared.delivery.wiring import build_channels, build_dispatcher
from shared.events.aftercare import ConsentChanged
from shared.kafka_admin import wait_for_broker_and_ensure_topics
from shared.kafka_security import broker_security
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.suppressions import SuppressionList, apply_consent_change
from shared.observability import get_logger
from shared.outbox.kafka_publisher import EventPublisher, KafkaEventPublisher
from shared.outbox.relay import OutboxRelay, outbox_relay_worker
from shared.outbox.store import Outbox
from shared.process import Health, Worker, embedded_http_server, http_worker, serve_metrics, supervise
from shared.schema_migrations import upgrade_to_head
from shared.topics import APPOINTMENTS, CONSENT, CONSENT_DEAD_LETTER
from shared.twilio_webhooks import WebhookSecurity

log = get_logger(__name__)

SERVICE = "notifier"


@dataclass(frozen=True)
class NotifierParts:
    settings: NotifierSettings
    engine: AsyncEngine
    clinic: ClinicConfig
    clock: Clock
    dispatcher: Dispatcher
    handler: AppointmentEventHandler
    broker: KafkaBroker
    workers: tuple[Worker, ...]
    health: Health
    relay: OutboxRelay
    web_app: FastAPI
    # The channels `build` made itself, which `close` closes; channels passed in belong to the caller.
    own_channels: tuple[SmtpEmailSender | TwilioSmsSender, ...]


def build(
    settings: NotifierSettings,
    *,
    clock: Clock | None = None,
    email: EmailSender | None = None,
    sms: SmsSender | None = None,
    publisher: EventPublisher | None = None,
) -> NotifierParts:
    clinic = load_clinic_config(settings.common.clinic_config_file)
    clock = clock or SystemClock()
    engine = create_engine(settings.database_url)
    own_channels: list[SmtpEmailSender | TwilioSmsSender] = []
    if email is None or sms is None:
        smtp, twilio = build_channels(settings.delivery, settings.public_status_callback_url)
        if email is None:
            email = smtp
            own_channels.append(smtp)
        if sms is None:
            sms = twilio
            own_channels.append(twilio)
    ledger = DeliveryLedger(engine)
    outbox = Outbox(tables.outbox)
    outcomes = DeliveryOutcomes(service=SERVICE, ledger=ledger, outbox=outbox)
    dispatcher = build_dispatcher(
        service=SERVICE, settings=settings.delivery, engine=engine, clinic=clinic,
        clock=clock, email=email, sms=sms, outcomes=outcomes,
    )
    relay = OutboxRelay(
        engine, outbox, publisher or KafkaEventPublisher(settings.common.kafka, client_id="notifier-outbox"),
        clock=clock.now, service=SERVICE,
    )

    def something_to_send() -> None:
        dispatcher.wake()
        relay.wake()

    health = Health(SERVICE)
    reports = ProviderStatusReports(engine=engine, ledger=ledger, suppressions=SuppressionList(engine),
                                    outcomes=outcomes, clock=clock, on_change=something_to_send)
    web_app = create_web_app(health=health, reports=reports, webhook=WebhookSecurity(
        settings.delivery.twilio.auth_token.get_secret_value(), settings.public_status_callback_url))
    handler = AppointmentEventHandler(
        engine=engine, ledger=ledger, states=AppointmentStateStore(engine),
        clinic=clinic, clock=clock, on_recorded=dispatcher.wake,
    )
    kafka = settings.common.kafka
    broker = KafkaBroker(
        kafka.bootstrap_servers, security=broker_security(kafka), enable_idempotence=True, logger=None
    )
    _subscribe(broker, settings, handler, SuppressionList(engine))
    return NotifierParts(
        settings=settings, engine=engine, clinic=clinic, clock=clock, dispatcher=dispatcher,
        handler=handler, broker=broker,
        workers=(
            _consumer_worker(broker), Worker("dispatcher", dispatcher.run), outbox_relay_worker(relay),
            http_worker("web", embedded_http_server(web_app, settings.http_host, settings.http_port)),
        ),
        health=health, relay=relay, web_app=web_app, own_channels=tuple(own_channels),
    )


async def run(parts: NotifierParts, stop: asyncio.Event) -> None:
    """Serve until `stop` is set; raises `WorkerDied` if a worker ends first."""
    settings = parts.settings
    try:
        await upgrade_to_head(parts.engine, migrations.MIGRATIONS)
        await wait_for_broker_and_ensure_topics(settings.common.kafka)
        await parts.broker.start()
        serve_metrics(settings.metrics_port, settings.metrics_host)
        log.info("notifier_started", group_id=settings.group_id, http_port=settings.http_port)
        await supervise(parts.workers, stop, parts.health)
    finally:
        await parts.broker.stop()
        await close(parts)
        log.info("notifier_stopped")


async def close(parts: NotifierParts) -> None:
    """Close the channels `build` made and the database connections."""
    for channel in parts.own_channels:
        await channel.close()
    await parts.engine.dispose()


def _consumer_worker(broker: KafkaBroker) -> Worker:
    """FastStream consumes (and restarts its own consume loops) while the broker is started: this
    worker keeps it started until `stop`, then stops it, committing nothing more."""

    async def consume(stop: asyncio.Event) -> None:
        try:
            await stop.wait()
        finally:
            await broker.stop()

    return Worker("consumer", consume)


def _subscribe(
    broker: KafkaBroker, settings: NotifierSettings, handler: AppointmentEventHandler, suppressions: SuppressionList
) -> None:
    """Batch subscribers on appointments and consent changes, each committing its own offsets."""
    dead_letters = KafkaDeadLetters(settings.common.kafka)
    group_id = settings.group_id
    EventConsumer(
        service=SERVICE, group_id=group_id, handle_batch=handler.handle_batch, dead_letters=dead_letters,
    ).subscribe(broker, APPOINTMENTS)

    async def apply_consent_changes(changes: list[ConsentChanged]) -> None:
        for change in changes:  # each its own transaction; applying one again changes nothing
            await apply_consent_change(suppressions, change)

    EventConsumer(
        service=SERVICE, group_id=f"{group_id}.consent", handle_batch=apply_consent_changes,
        dead_letters=dead_letters, parse=ConsentChanged.model_validate_json, dead_letter_topic=CONSENT_DEAD_LETTER,
    ).subscribe(broker, CONSENT)
