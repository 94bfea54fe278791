"""Wires the notifier: Kafka consumer → handler → ledger → dispatcher → email and SMS."""
from __future__ import annotations

import asyncio

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.notifier.handlers import AppointmentEventHandler
from services.notifier.settings import NotifierSettings
from services.notifier.tables import SCHEMA
from shared.clinic_config import load_clinic_config
from shared.clock import SystemClock
from shared.consumer import EventConsumer
from shared.database import create_engine, create_tables
from shared.delivery.wiring import build_channels, build_dispatcher
from shared.ledger.appointment_state import AppointmentStateStore
from shared.ledger.ledger import DeliveryLedger
from shared.observability import configure_logging, get_logger
from shared.process import serve_metrics, stop_on_signals
from shared.events.aftercare import ConsentChanged
from shared.ledger.suppressions import SuppressionList, apply_consent_change
from shared.topics import APPOINTMENTS, CONSENT, CONSENT_DEAD_LETTER, wait_for_broker_and_ensure_topics

log = get_logger("notifier")


async def run_notifier(settings: NotifierSettings) -> None:
    common = settings.common
    configure_logging(common.log_level, common.log_json)
    clinic = load_clinic_config(common.clinic_config_file)
    clock = SystemClock()
    engine = create_engine(settings.database_url)
    await create_tables(engine, SCHEMA)
    await wait_for_broker_and_ensure_topics(common.kafka.bootstrap_servers)

    email, sms = build_channels(settings.delivery)
    dispatcher = build_dispatcher(
        service="notifier", settings=settings.delivery, engine=engine, clinic=clinic,
        clock=clock, email=email, sms=sms,
    )
    handler = AppointmentEventHandler(
        engine=engine, ledger=DeliveryLedger(engine), states=AppointmentStateStore(),
        clinic=clinic, clock=clock, on_recorded=dispatcher.wake,
    )
    broker = KafkaBroker(common.kafka.bootstrap_servers, enable_idempotence=True, logger=None)
    consumer = EventConsumer(
        service="notifier", group_id=settings.group_id, broker=broker, handle=handler
    )

    @broker.subscriber(
        APPOINTMENTS, group_id=settings.group_id, ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
    )
    async def on_appointment_event(message: KafkaMessage) -> None:
        await consumer(message)

    suppressions = SuppressionList(engine)
    consent_consumer = EventConsumer(
        service="notifier", group_id=f"{settings.group_id}.consent", broker=broker,
        handle=lambda change: apply_consent_change(suppressions, change),
        parse=ConsentChanged.model_validate_json, dead_letter_topic=CONSENT_DEAD_LETTER,
    )

    @broker.subscriber(
        CONSENT, group_id=f"{settings.group_id}.consent", ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
    )
    async def on_consent_change(message: KafkaMessage) -> None:
        await consent_consumer(message)

    serve_metrics(settings.metrics_port, settings.metrics_host)
    stop = stop_on_signals()
    await broker.start()
    log.info("notifier_started", group_id=settings.group_id)
    dispatching = asyncio.create_task(dispatcher.run(stop))
    try:
        await stop.wait()
    finally:
        await broker.stop()
        await dispatching
        await email.close()
        await sms.close()
        await engine.dispose()
        log.info("notifier_stopped")
