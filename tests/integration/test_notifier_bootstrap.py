"""The notifier run by `bootstrap.run` against the real Kafka broker: it stops when told to, and it
stops with an error, its health red, when one of its workers dies."""
from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from services.notifier import bootstrap
from services.notifier.settings import NotifierSettings
from shared.channels.messages import EmailMessage, SmsMessage
from shared.process import Worker, WorkerDied
from shared.settings import CommonSettings, DeliverySettings, KafkaSettings, TwilioSettings
from tests.support.kafka_server import KafkaServer

pytestmark = pytest.mark.kafka


class Unreachable:
    async def send(self, message: EmailMessage | SmsMessage) -> str:
        raise AssertionError("nothing is due: nothing is sent")


def parts(kafka: KafkaServer, tmp_path: Path, unique_id: str) -> bootstrap.NotifierParts:
    settings = NotifierSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/notifier.db",
        group_id=f"notifier-{unique_id}",
        metrics_port=None,
        http_port=0,
        common=CommonSettings(kafka=KafkaSettings(bootstrap_servers=kafka.bootstrap_servers)),
        delivery=DeliverySettings(link_secret="a-test-secret-of-at-least-32-bytes",
                                  twilio=TwilioSettings(api_base_url="http://127.0.0.1:9")),
    )
    return bootstrap.build(settings, email=Unreachable(), sms=Unreachable())


async def until_started(notifier: bootstrap.NotifierParts, running: asyncio.Task[None]) -> None:
    async with asyncio.timeout(60):
        while not notifier.broker.running:
            assert not running.done(), running.exception()
            await asyncio.sleep(0.05)


async def test_a_notifier_told_to_stop_stops_its_workers_and_its_broker(
    kafka: KafkaServer, tmp_path: Path, unique_id: str
) -> None:
    notifier = parts(kafka, tmp_path, unique_id)
    stop = asyncio.Event()
    running = asyncio.create_task(bootstrap.run(notifier, stop))
    await until_started(notifier, running)
    stop.set()
    await asyncio.wait_for(running, timeout=30)
    assert notifier.health.ok and not notifier.broker.running


async def test_a_notifier_whose_dispatcher_dies_stops_with_its_health_red(
    kafka: KafkaServer, tmp_path: Path, unique_id: str
) -> None:
    notifier = parts(kafka, tmp_path, unique_id)

    async def one_round_then_return(stop: asyncio.Event) -> None:
        await notifier.dispatcher.dispatch_due()

    consumer = next(worker for worker in notifier.workers if worker.name == "consumer")
    notifier = replace(notifier, workers=(consumer, Worker("dispatcher", one_round_then_return)))
    stop = asyncio.Event()
    with pytest.raises(WorkerDied, match="dispatcher"):
        await asyncio.wait_for(bootstrap.run(notifier, stop), timeout=90)
    assert not notifier.health.ok and notifier.health.dead_workers == ["dispatcher"]
    assert stop.is_set() and not notifier.broker.running
