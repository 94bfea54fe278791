"""The delivery ledger on SQLite and on PostgreSQL: intents are recorded once and claimed once."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.notifier.tables import SCHEMA as NOTIFIER_SCHEMA
from shared.database import create_engine, create_tables
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.model import DeliveryIntent, DeliveryStatus

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def intent(step: str = "confirmation", channel: str = "email", version: int = 1, due_in: timedelta = timedelta(0)) -> DeliveryIntent:
    return DeliveryIntent(
        appointment_id="apt-1",
        step=step,
        channel=channel,
        appointment_version=version,
        template=step,
        recipient="alex@example.com",
        locale="en-CA",
        due_at=NOW + due_in,
        context={"patient": {"first_name": "Alex"}},
    )


@pytest.fixture
async def ledger(database_url: str):
    engine = create_engine(database_url)
    await create_tables(engine, NOTIFIER_SCHEMA)
    yield DeliveryLedger(engine)
    await engine.dispose()


async def record(ledger: DeliveryLedger, *intents: DeliveryIntent) -> int:
    async with ledger.engine.begin() as connection:
        return await ledger.record(connection, intents, NOW)


async def test_the_same_intent_recorded_twice_is_kept_once(ledger: DeliveryLedger) -> None:
    assert await record(ledger, intent(), intent(channel="sms")) == 2
    assert await record(ledger, intent(), intent(channel="sms")) == 0
    async with ledger.engine.connect() as connection:
        assert len(await ledger.for_appointment(connection, "apt-1")) == 2


async def test_a_new_appointment_version_is_a_new_intent(ledger: DeliveryLedger) -> None:
    await record(ledger, intent(version=1))
    assert await record(ledger, intent(version=2)) == 1


async def test_only_due_messages_are_claimed_and_each_only_once(ledger: DeliveryLedger) -> None:
    await record(ledger, intent(), intent(step="reminder_2h", due_in=timedelta(hours=1)))
    claimed = await ledger.claim_due(NOW, limit=10, lease=timedelta(seconds=60))
    assert [d.step for d in claimed] == ["confirmation"]
    assert claimed[0].status is DeliveryStatus.SENDING and claimed[0].attempts == 1
    assert await ledger.claim_due(NOW, limit=10, lease=timedelta(seconds=60)) == []
    assert await ledger.next_due_at() == NOW + timedelta(seconds=60)


async def test_a_message_whose_dispatcher_died_is_claimed_again_after_its_lease(ledger: DeliveryLedger) -> None:
    await record(ledger, intent())
    await ledger.claim_due(NOW, limit=10, lease=timedelta(seconds=60))
    again = await ledger.claim_due(NOW + timedelta(seconds=61), limit=10, lease=timedelta(seconds=60))
    assert [d.attempts for d in again] == [2]


async def test_sent_messages_are_never_claimed_again(ledger: DeliveryLedger) -> None:
    await record(ledger, intent())
    [delivery] = await ledger.claim_due(NOW, limit=10, lease=timedelta(seconds=60))
    await ledger.mark_sent(delivery.id, "SM123", NOW)
    assert await ledger.claim_due(NOW + timedelta(hours=1), limit=10, lease=timedelta(seconds=60)) == []
    assert (await ledger.counts_by_status()) == {"sent": 1}


async def test_a_retry_waits_for_its_new_due_time(ledger: DeliveryLedger) -> None:
    await record(ledger, intent())
    [delivery] = await ledger.claim_due(NOW, limit=10, lease=timedelta(seconds=60))
    await ledger.retry_later(delivery.id, NOW + timedelta(seconds=30), "smtp down", "421", NOW)
    assert await ledger.claim_due(NOW + timedelta(seconds=29), limit=10, lease=timedelta(seconds=60)) == []
    [retried] = await ledger.claim_due(NOW + timedelta(seconds=30), limit=10, lease=timedelta(seconds=60))
    assert retried.attempts == 2 and retried.reason == "smtp down"


async def test_cancelling_pending_messages_leaves_sent_ones_alone(ledger: DeliveryLedger) -> None:
    await record(ledger, intent(), intent(step="reminder_24h", due_in=timedelta(hours=2)))
    [confirmation] = await ledger.claim_due(NOW, limit=10, lease=timedelta(seconds=60))
    await ledger.mark_sent(confirmation.id, "id", NOW)
    async with ledger.engine.begin() as connection:
        assert await ledger.cancel_pending(connection, "apt-1", "cancelled", NOW) == 1
    assert await ledger.counts_by_status() == {"sent": 1, "cancelled": 1}


async def test_concurrent_dispatchers_never_claim_the_same_message(ledger: DeliveryLedger) -> None:
    await record(ledger, *(intent(step=f"step_{i}") for i in range(200)))
    claims = await asyncio.gather(
        *(ledger.claim_due(NOW, limit=30, lease=timedelta(seconds=60)) for _ in range(10))
    )
    claimed_ids = [d.id for batch in claims for d in batch]
    assert len(claimed_ids) == len(set(claimed_ids))
    remaining = await ledger.claim_due(NOW, limit=500, lease=timedelta(seconds=60))
    assert len(claimed_ids) + len(remaining) == 200
