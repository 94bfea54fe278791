"""Builds the aftercare service from its dependencies, and runs it.

`build` assembles every part (engine, stores, handlers, dispatcher, outbox relay, Kafka consumer, web
app) and starts nothing; the entry point and the tests both call it, the tests passing their own
clock, channels and publisher. `run` prepares the database and the broker, then supervises the
workers until told to stop.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aftercare import migrations, tables
from services.aftercare.delivery_context import SentReminderStore
from services.aftercare.handlers import CheckInAnswers, CompletedVisitHandler, ConsentBook, NoReplyWatch
from services.aftercare.handlers.escalations import EscalationDesk
from services.aftercare.handlers.reminder_replies import ReminderReplies
from services.aftercare.handlers.screening import ScreeningDesk
from services.aftercare.handlers.sent_reminders import SentReminders
from services.aftercare.http import create_web_app
from services.aftercare.screening_http import add_screening_routes
from services.aftercare.settings import AftercareSettings
from services.aftercare.store import CheckInStore, ConsentTrail, UpcomingVisitStore
from services.aftercare.trajectory_email import ChartDrawingSender, TrajectoryComposer
from services.aftercare.workers import consumer_worker, no_reply_worker
from shared.channels.messages import EmailSender, SmsSender
from shared.clinic_config import ClinicConfig, load_clinic_config
from shared.clock import Clock, SystemClock
from shared.consumer import EventConsumer, KafkaDeadLetters
from shared.database import create_engine
from shared.delivery.compose import MessageComposer
from shared.delivery.dispatcher import Dispatcher
from shared.delivery.outcomes import DeliveryOutcomes
from shared.delivery.status_reports import ProviderStatusReports
from shared.delivery.wiring import build_channels, checked_catalogue, dispatch_options, patient_links
from shared.events.deliveries import DeliveryStatusChanged
from shared.kafka_admin import broker_ready_unless_stopped
from shared.kafka_security import broker_security
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.suppressions import SuppressionList
from shared.links import PatientLinks
from shared.observability import get_logger
from shared.outbox.kafka_publisher import EventPublisher, KafkaEventPublisher
from shared.outbox.relay import OutboxRelay, outbox_relay_worker
from shared.outbox.store import Outbox
from shared.process import Health, Worker, embedded_http_server, http_worker, serve_metrics, supervise
from shared.schema_migrations import upgrade_to_head
from shared.topics import APPOINTMENTS, DELIVERIES, DELIVERIES_DEAD_LETTER
from shared.twilio_webhooks import WebhookSecurity, add_status_callback_route

SERVICE = "aftercare"

log = get_logger(__name__)


class Closable(Protocol):
    async def close(self) -> None: ...


@dataclass(frozen=True)
class AftercareParts:
    settings: AftercareSettings
    clinic: ClinicConfig
    clock: Clock
    engine: AsyncEngine
    store: CheckInStore
    ledger: DeliveryLedger
    outbox: Outbox
    links: PatientLinks
    composer: MessageComposer
    dispatcher: Dispatcher
    relay: OutboxRelay
    consent: ConsentBook
    completed_visits: CompletedVisitHandler
    answers: CheckInAnswers
    silence: NoReplyWatch
    broker: KafkaBroker
    health: Health
    web_app: FastAPI
    owned_channels: tuple[Closable, ...]  # the channels `build` made, closed when `run` ends
    escalations: EscalationDesk
    screening: ScreeningDesk
    sent_reminders: SentReminders


def build(settings: AftercareSettings, *, clock: Clock | None = None, email: EmailSender | None = None,
          sms: SmsSender | None = None, publisher: EventPublisher | None = None) -> AftercareParts:
    """Every part of the service, wired, nothing started; the real channels and Kafka unless given."""
    common, delivery = settings.common, settings.delivery
    clinic = load_clinic_config(common.clinic_config_file)
    clock = clock or SystemClock()
    engine = create_engine(settings.database_url)
    owned: list[Closable] = []
    if email is None or sms is None:
        smtp, twilio = build_channels(delivery, settings.public_status_callback_url)
        if email is None:
            email = smtp
            owned.append(smtp)
        if sms is None:
            sms = twilio
            owned.append(twilio)

    links = patient_links(delivery)
    ledger = DeliveryLedger(engine)
    suppressions = SuppressionList(engine)
    # Staff emails' soreness charts are drawn as they go out, off the event loop (trajectory_email.py).
    composer = TrajectoryComposer(checked_catalogue(clinic), clinic, links)
    outbox = Outbox(tables.outbox)
    outcomes = DeliveryOutcomes(service=SERVICE, ledger=ledger, outbox=outbox)
    dispatcher = Dispatcher(
        service=SERVICE, ledger=ledger, composer=composer, email=ChartDrawingSender(email, clinic), sms=sms,
        suppressions=suppressions,
        clock=clock, outcomes=outcomes, **dispatch_options(delivery),
    )
    relay = OutboxRelay(
        engine, outbox,
        publisher or KafkaEventPublisher(common.kafka, client_id="aftercare-outbox"),
        clock=clock.now, service=SERVICE,
    )

    def something_to_send() -> None:
        dispatcher.wake()
        relay.wake()

    store = CheckInStore(engine)
    consent = ConsentBook(suppressions=suppressions, trail=ConsentTrail(engine), outbox=outbox, clock=clock,
                          on_change=something_to_send)
    escalations = EscalationDesk(engine=engine, ledger=ledger, outbox=outbox, links=links, clinic=clinic, clock=clock,
                                 on_change=something_to_send)
    upcoming = UpcomingVisitStore(engine)
    sent_reminder_store = SentReminderStore(engine)
    sent_reminders = SentReminders(engine=engine, store=sent_reminder_store, clock=clock)
    reminders = ReminderReplies(upcoming=upcoming, sent=sent_reminder_store, check_ins=store, ledger=ledger,
                                outbox=outbox, composer=composer, clinic=clinic)
    answers = CheckInAnswers(engine=engine, store=store, ledger=ledger, outbox=outbox, consent=consent,
                             composer=composer, clinic=clinic, clock=clock, escalations=escalations,
                             on_change=something_to_send, reminders=reminders)
    completed_visits = CompletedVisitHandler(engine=engine, store=store, ledger=ledger, outbox=outbox,
                                             clinic=clinic, clock=clock, on_recorded=something_to_send,
                                             upcoming=upcoming)
    silence = NoReplyWatch(engine=engine, store=store, ledger=ledger, outbox=outbox, clinic=clinic,
                           clock=clock, links=links, on_recorded=something_to_send)
    broker = _consuming_broker(settings, completed_visits, sent_reminders)
    health = Health(SERVICE)
    web_app = create_web_app(
        answers=answers, consent=consent, links=links, clinic=clinic, health=health, escalations=escalations,
        webhook=WebhookSecurity(delivery.twilio.auth_token.get_secret_value(), settings.public_webhook_url),
        limits=settings.public_limits(),
    )
    screening = ScreeningDesk(engine=engine, ledger=ledger, outbox=outbox, links=links, clinic=clinic, clock=clock,
                              on_change=something_to_send)
    add_screening_routes(web_app, screening=screening, clinic=clinic)
    add_status_callback_route(web_app, ProviderStatusReports(
        engine=engine, ledger=ledger, suppressions=suppressions, outcomes=outcomes, clock=clock,
        on_change=something_to_send,
    ), WebhookSecurity(delivery.twilio.auth_token.get_secret_value(), settings.public_status_callback_url))
    return AftercareParts(settings, clinic, clock, engine, store, ledger, outbox, links, composer, dispatcher, relay,
                          consent, completed_visits, answers, silence, broker, health, web_app, tuple(owned),
                          escalations, screening, sent_reminders)


def _consuming_broker(settings: AftercareSettings, completed_visits: CompletedVisitHandler,
                      sent_reminders: SentReminders) -> KafkaBroker:
    """Batch subscribers on appointments and on the notifier's delivery reports, each committing its own offsets."""
    kafka = settings.common.kafka
    broker = KafkaBroker(
        kafka.bootstrap_servers, security=broker_security(kafka), enable_idempotence=True, logger=None
    )
    dead_letters = KafkaDeadLetters(kafka)
    EventConsumer(service=SERVICE, group_id=settings.group_id, handle_batch=completed_visits.handle_batch,
                  dead_letters=dead_letters).subscribe(broker, APPOINTMENTS)
    EventConsumer(service=SERVICE, group_id=deliveries_group(settings.group_id),
                  handle_batch=sent_reminders.handle_batch, dead_letters=dead_letters,
                  parse=DeliveryStatusChanged.model_validate_json, dead_letter_topic=DELIVERIES_DEAD_LETTER,
                  ).subscribe(broker, DELIVERIES)
    return broker


def deliveries_group(group_id: str) -> str:
    """The consumer group reading clinic.deliveries.v1: the service's group, suffixed."""
    return f"{group_id}.deliveries"


def workers(parts: AftercareParts) -> list[Worker]:
    settings = parts.settings

    def started() -> None:
        log.info("aftercare_started", group_id=settings.group_id, http_port=settings.http_port)

    return [
        consumer_worker(parts.broker, on_started=started),
        Worker("dispatcher", parts.dispatcher.run),
        no_reply_worker(parts.silence),
        Worker("escalation-watch", parts.escalations.run),
        outbox_relay_worker(parts.relay),
        http_worker("web", embedded_http_server(parts.web_app, settings.http_host, settings.http_port)),
    ]


async def run(parts: AftercareParts, stop: asyncio.Event) -> None:
    """Create the tables, wait for Kafka, then serve until `stop`; raises WorkerDied if a worker died."""
    settings = parts.settings
    try:
        await upgrade_to_head(parts.engine, migrations.MIGRATIONS)
        if not await broker_ready_unless_stopped(settings.common.kafka, stop):
            return
        serve_metrics(settings.metrics_port, settings.metrics_host)
        # `aftercare_started` is logged by the consumer once the broker has started.
        await supervise(workers(parts), stop, parts.health)
    finally:
        for channel in parts.owned_channels:
            await channel.close()
        await parts.engine.dispose()
        log.info("aftercare_stopped")
