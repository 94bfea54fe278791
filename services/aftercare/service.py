"""Wires the aftercare service: completed visits in, check-ins out, replies and alerts on record."""
from __future__ import annotations

import asyncio

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.aftercare.answers import CheckInAnswers
from services.aftercare.check_in_store import CheckInStore
from services.aftercare.consent import ConsentBook
from services.aftercare.handlers import CompletedVisitHandler
from services.aftercare.no_reply import NoReplyWatch
from services.aftercare.outbox import AFTERCARE_OUTBOX
from services.aftercare.settings import AftercareSettings
from services.aftercare.tables import SCHEMA
from services.aftercare.web import WebhookSecurity, create_web_app
from shared.clinic_config import load_clinic_config
from shared.clock import SystemClock
from shared.consumer import EventConsumer
from shared.database import create_engine, create_tables
from shared.delivery.wiring import build_channels, build_dispatcher, patient_links
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.suppressions import SuppressionList
from shared.observability import configure_logging, get_logger
from shared.outbox.kafka_publisher import KafkaEventPublisher
from shared.outbox.relay import OutboxRelay
from shared.process import embedded_http_server, serve_metrics, stop_on_signals
from shared.topics import APPOINTMENTS, wait_for_broker_and_ensure_topics

log = get_logger("aftercare")


async def run_aftercare(settings: AftercareSettings) -> None:
    common, delivery = settings.common, settings.delivery
    configure_logging(common.log_level, common.log_json)
    clinic = load_clinic_config(common.clinic_config_file)
    clock = SystemClock()
    engine = create_engine(settings.database_url)
    await create_tables(engine, SCHEMA)
    await wait_for_broker_and_ensure_topics(common.kafka.bootstrap_servers)

    email, sms = build_channels(delivery)
    dispatcher = build_dispatcher(service="aftercare", settings=delivery, engine=engine, clinic=clinic,
                                  clock=clock, email=email, sms=sms)
    relay = OutboxRelay(engine, AFTERCARE_OUTBOX,
                        KafkaEventPublisher(common.kafka.bootstrap_servers, client_id="aftercare-outbox"),
                        service="aftercare")

    def something_to_send() -> None:
        dispatcher.wake()
        relay.wake()

    ledger = DeliveryLedger(engine)
    store = CheckInStore(engine.dialect.name)
    consent = ConsentBook(SuppressionList(engine), AFTERCARE_OUTBOX)
    answers = CheckInAnswers(engine=engine, store=store, ledger=ledger, outbox=AFTERCARE_OUTBOX, consent=consent,
                             composer=dispatcher.composer, clinic=clinic, clock=clock, on_change=something_to_send)
    completed_visits = CompletedVisitHandler(engine=engine, store=store, ledger=ledger, outbox=AFTERCARE_OUTBOX,
                                             clinic=clinic, clock=clock, on_recorded=something_to_send)
    silence = NoReplyWatch(engine=engine, store=store, ledger=ledger, outbox=AFTERCARE_OUTBOX, clinic=clinic,
                           clock=clock, on_recorded=something_to_send)

    broker = KafkaBroker(common.kafka.bootstrap_servers, enable_idempotence=True, logger=None)
    consumer = EventConsumer(service="aftercare", group_id=settings.group_id, broker=broker,
                                        handle=completed_visits)

    @broker.subscriber(APPOINTMENTS, group_id=settings.group_id, ack_policy=AckPolicy.MANUAL,
                       auto_offset_reset="earliest")
    async def on_appointment_event(message: KafkaMessage) -> None:
        await consumer(message)

    web = embedded_http_server(
        create_web_app(answers=answers, consent=consent, links=patient_links(delivery), clinic=clinic, clock=clock,
                       webhook=WebhookSecurity(delivery.twilio.auth_token.get_secret_value(),
                                               settings.public_webhook_url)),
        settings.http_host, settings.http_port,
    )
    serve_metrics(settings.metrics_port, settings.metrics_host)
    stop = stop_on_signals()
    await broker.start()
    tasks = [
        asyncio.create_task(dispatcher.run(stop), name="dispatcher"),
        asyncio.create_task(silence.run(stop), name="no-reply-watch"),
        asyncio.create_task(relay.run(), name="outbox-relay"),
        asyncio.create_task(web.serve(), name="web"),
    ]
    log.info("aftercare_started", group_id=settings.group_id, http_port=settings.http_port)
    try:
        await stop.wait()
    finally:
        web.should_exit = True
        await broker.stop()
        tasks[2].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await email.close()
        await sms.close()
        await engine.dispose()
        log.info("aftercare_stopped")
