"""The delivery ledger on SQLite and on PostgreSQL: intents are recorded once and claimed once."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.notifier import tables as notifier_tables
from services.notifier.tables import SCHEMA as NOTIFIER_SCHEMA
from shared.database import create_engine, create_tables
from shared.delivery.outcomes import DeliveryOutcomes
from shared.events.deliveries import DeliveryStatusChanged
from shared.ledger.ledger import AlsoRecord, AttemptStart, DeliveryLedger
from shared.ledger.model import DeliveryIntent, DeliveryStatus
from shared.ledger.recording import rows_of
from shared.ledger.suppressions import SuppressionList
from shared.ledger.tables import deliveries
from shared.outbox.store import Outbox
from tests.conftest import create_postgres_database
from tests.support.postgres_server import PostgresServer
from tests.support.sqlite_plans import plan_steps, statements_of

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def intent(
    step: str = "confirmation", channel: str = "email", version: int = 1, due_in: timedelta = timedelta(0)
) -> DeliveryIntent:
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


async def test_a_batch_stores_each_intent_exactly_as_a_single_insert_would(ledger: DeliveryLedger) -> None:
    """Times in any zone, with microseconds or without, a context in any language: what a batch records
    reads back and compares in the database as the row Core's own insert stores."""
    toronto = timezone(timedelta(hours=-5))
    due, expires = datetime(2026, 3, 8, 1, 59, 59, 5, tzinfo=toronto), datetime(2026, 3, 9, tzinfo=UTC)
    context = {"patient": {"first_name": "Zoë"}, "extra": {"round": 1, "of": None}}
    shared_context = [replace(intent(step=step, due_in=timedelta(0)), due_at=due, expires_at=expires, context=context,
                              fallback_recipient="+14165550123") for step in ("reminder_24h", "reminder_2h")]
    batch = [*shared_context, replace(intent(channel="sms"), due_at=due, recipient="+14165550123")]
    single = [replace(each, appointment_id="apt-single") for each in batch]
    assert await record(ledger, *batch) == 3
    async with ledger.engine.begin() as connection:
        await connection.execute(deliveries.insert(), rows_of(single, NOW))
        stored = (await connection.exec_driver_sql(
            "SELECT appointment_id, step, channel, appointment_version, template, recipient, locale, context,"
            " scheduled_for, due_at, expires_at, status, attempts, fallback_recipient, created_at, updated_at"
            " FROM deliveries ORDER BY step, channel, appointment_id")).all()
        claimable = await connection.scalar(
            select(func.count()).select_from(deliveries).where(deliveries.c.due_at <= due.astimezone(UTC)))
    assert [row[1:] for row in stored[0::2]] == [row[1:] for row in stored[1::2]]
    assert [row[0] for row in stored] == ["apt-1", "apt-single"] * 3
    assert claimable == 6


async def test_a_batch_with_some_intents_already_recorded_counts_the_new_ones(ledger: DeliveryLedger) -> None:
    await record(ledger, intent(step="reminder_24h"))
    assert await record(ledger, intent(step="reminder_24h"), intent(step="reminder_2h"), intent(channel="sms")) == 2
    async with ledger.engine.connect() as connection:
        assert sorted(d.step for d in await ledger.for_appointment(connection, "apt-1")) == [
            "confirmation", "reminder_24h", "reminder_2h"]


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
    await ledger.mark_sent(delivery, "SM123", NOW)
    assert await ledger.claim_due(NOW + timedelta(hours=1), limit=10, lease=timedelta(seconds=60)) == []
    assert (await ledger.counts_by_status()) == {"sent": 1}


async def test_a_retry_waits_for_its_new_due_time(ledger: DeliveryLedger) -> None:
    await record(ledger, intent())
    [delivery] = await ledger.claim_due(NOW, limit=10, lease=timedelta(seconds=60))
    await ledger.retry_later(delivery, NOW + timedelta(seconds=30), "smtp down", "421", NOW)
    assert await ledger.claim_due(NOW + timedelta(seconds=29), limit=10, lease=timedelta(seconds=60)) == []
    [retried] = await ledger.claim_due(NOW + timedelta(seconds=30), limit=10, lease=timedelta(seconds=60))
    assert retried.attempts == 2 and retried.reason == "smtp down"


async def test_cancelling_pending_messages_leaves_sent_ones_alone(ledger: DeliveryLedger) -> None:
    await record(ledger, intent(), intent(step="reminder_24h", due_in=timedelta(hours=2)))
    [confirmation] = await ledger.claim_due(NOW, limit=10, lease=timedelta(seconds=60))
    await ledger.mark_sent(confirmation, "id", NOW)
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


LEASE = timedelta(seconds=60)


async def cancel(ledger: DeliveryLedger) -> int:
    async with ledger.engine.begin() as connection:
        return await ledger.cancel_pending(connection, "apt-1", "cancelled", NOW)


async def test_a_cancellation_also_stops_a_message_already_claimed(ledger: DeliveryLedger) -> None:
    await record(ledger, intent())
    [claimed] = await ledger.claim_due(NOW, limit=10, lease=LEASE)
    assert await cancel(ledger) == 1
    # The dispatcher checks again right before the provider call, and a transient error cannot revive it.
    assert await ledger.begin_attempt(claimed, NOW, LEASE) is AttemptStart.NOT_WANTED
    assert await ledger.retry_later(claimed, NOW + timedelta(seconds=5), "smtp down", "421", NOW) is False
    assert await ledger.claim_due(NOW + timedelta(hours=1), limit=10, lease=LEASE) == []
    assert await ledger.counts_by_status() == {"cancelled": 1}


async def test_a_message_cancelled_while_its_send_was_in_flight_ends_as_sent(ledger: DeliveryLedger) -> None:
    await record(ledger, intent())
    [claimed] = await ledger.claim_due(NOW, limit=10, lease=LEASE)
    assert await ledger.begin_attempt(claimed, NOW, LEASE) is AttemptStart.STARTED
    await cancel(ledger)
    assert await ledger.mark_sent(claimed, "SM1", NOW)  # it did go out: the ledger says so
    assert await ledger.counts_by_status() == {"sent": 1}


async def test_a_dispatcher_whose_lease_ran_out_cannot_overwrite_the_next_claim(ledger: DeliveryLedger) -> None:
    await record(ledger, intent())
    [stale] = await ledger.claim_due(NOW, limit=10, lease=LEASE)
    [current] = await ledger.claim_due(NOW + LEASE, limit=10, lease=LEASE)
    assert await ledger.mark_failed(stale, "late answer", "500", NOW + LEASE) is False
    assert await ledger.retry_later(stale, NOW + 2 * LEASE, "late", None, NOW + LEASE) is False
    assert await ledger.counts_by_status() == {"sending": 1}
    assert await ledger.mark_sent(current, "SM2", NOW + LEASE)
    assert await ledger.mark_sent(stale, "SM1", NOW + LEASE) is False
    async with ledger.engine.connect() as connection:
        [row] = await ledger.for_appointment(connection, "apt-1")
    assert (row.status, row.provider_id) == (DeliveryStatus.SENT, "SM2")


async def test_a_message_reclaimed_after_its_lease_has_an_unknown_outcome(ledger: DeliveryLedger) -> None:
    await record(ledger, intent(), intent(step="other"))
    first = await ledger.claim_due(NOW, limit=1, lease=LEASE)
    assert first[0].unknown_outcome_since is None
    again = await ledger.claim_due(NOW + LEASE, limit=10, lease=LEASE)
    assert {d.step: d.unknown_outcome_since for d in again} == {"confirmation": NOW, "other": None}


async def test_claims_of_one_channel_leave_the_other_alone(ledger: DeliveryLedger) -> None:
    await record(ledger, intent(), intent(channel="sms"))
    assert [d.channel for d in await ledger.claim_due(NOW, limit=10, lease=LEASE, channel="sms")] == ["sms"]
    assert [d.channel for d in await ledger.claim_due(NOW, limit=10, lease=LEASE, channel="sms")] == []


async def test_a_stop_cancels_patient_messages_to_the_number_but_not_staff_messages(ledger: DeliveryLedger) -> None:
    staff = DeliveryIntent("apt-1", "staff_alert:c1", "sms", 1, "staff_alert", "+14165550199", "en-CA", NOW)
    patient_text = DeliveryIntent("apt-1", "reminder", "sms", 1, "reminder", "+14165550199", "en-CA", NOW)
    await record(ledger, staff, patient_text)
    async with ledger.engine.begin() as connection:
        assert await ledger.cancel_pending_to(connection, "sms", "+14165550199", "opted_out", NOW) == 1
    [left] = await ledger.claim_due(NOW, limit=10, lease=LEASE)
    assert left.template == "staff_alert"


async def test_when_the_next_message_is_due_is_one_statement(ledger: DeliveryLedger) -> None:
    """Asked each time a claim finds nothing more due on a channel: a pending message or a lease that ends."""
    await record(ledger, intent(step="later", due_in=timedelta(hours=2)),
                 intent(step="soon", due_in=timedelta(hours=1)))
    await ledger.claim_to_send(NOW + timedelta(hours=1), 1, timedelta(minutes=5), "email")
    statements: list[str] = []
    event.listen(ledger.engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    assert await ledger.next_due_at("email") == NOW + timedelta(hours=1, minutes=5)  # the lease of "soon"
    assert await ledger.next_due_at("sms") is None
    assert len(statements) == 2


async def test_the_due_backlog_counts_pending_messages_due_now(ledger: DeliveryLedger) -> None:
    await record(ledger, intent(), intent(step="later", due_in=timedelta(hours=1)))
    assert await ledger.due_backlog(NOW + timedelta(minutes=5)) == (1, NOW)


async def test_a_message_to_an_opted_out_patient_is_not_started_but_a_staff_message_is(
    ledger: DeliveryLedger,
) -> None:
    await SuppressionList(ledger.engine).suppress("email", "alex@example.com", "unsubscribe_link", NOW)
    staff = DeliveryIntent("apt-1", "staff_alert:c1", "email", 1, "staff_alert", "Alex@Example.com ", "en-CA", NOW)
    await record(ledger, intent(), replace(intent(step="reminder_24h"), recipient=" ALEX@example.com"), staff)
    claimed = {d.step: d for d in await ledger.claim_due(NOW, limit=10, lease=LEASE)}

    assert await ledger.begin_attempt(claimed["confirmation"], NOW, LEASE) is AttemptStart.OPTED_OUT
    assert await ledger.begin_attempt(claimed["reminder_24h"], NOW, LEASE) is AttemptStart.OPTED_OUT
    assert await ledger.begin_attempt(claimed["staff_alert:c1"], NOW, LEASE) is AttemptStart.STARTED
    # Not started is not recorded as anything yet: the dispatcher records why it skipped it.
    assert await ledger.counts_by_status() == {"sending": 3}


async def test_outcomes_recorded_at_the_same_moment_share_one_commit(ledger: DeliveryLedger) -> None:
    await record(ledger, *(intent(step=f"step_{i}") for i in range(6)))
    claimed = await ledger.claim_due(NOW, limit=10, lease=LEASE)
    commits = []

    def committed(connection: object) -> None:
        commits.append(connection)

    event.listen(ledger.engine.sync_engine, "commit", committed)
    try:
        recorded = await asyncio.gather(*(ledger.mark_sent(d, f"id-{d.step}", NOW) for d in claimed))
    finally:
        event.remove(ledger.engine.sync_engine, "commit", committed)
    assert recorded == [True] * 6
    assert len(commits) == 1
    assert await ledger.counts_by_status() == {"sent": 6}


async def test_each_outcome_written_together_is_still_checked_against_its_own_claim(ledger: DeliveryLedger) -> None:
    await record(ledger, intent(), intent(step="reminder_24h"))
    [first, second] = await ledger.claim_due(NOW, limit=10, lease=LEASE)
    lost = replace(second, claim_token="a-claim-that-ran-out")
    assert list(await asyncio.gather(
        ledger.mark_sent(first, "SM1", NOW), ledger.mark_failed(lost, "late", "500", NOW),
        ledger.begin_attempt(lost, NOW, LEASE),
    )) == [True, False, AttemptStart.NOT_WANTED]
    assert await ledger.counts_by_status() == {"sent": 1, "sending": 1}


async def test_outcomes_recorded_together_each_store_their_own_event_and_no_other(ledger: DeliveryLedger) -> None:
    outcomes = DeliveryOutcomes(service="notifier", ledger=ledger, outbox=Outbox(notifier_tables.outbox))
    await record(ledger, *(intent(step=f"step_{i}") for i in range(5)))
    claimed = await ledger.claim_due(NOW, limit=10, lease=LEASE)
    together, with_a_lost_claim = claimed[:3], [claimed[3], replace(claimed[4], claim_token="ran-out")]

    for batch in (together, with_a_lost_claim):
        await asyncio.gather(*(ledger.mark_sent(d, f"SM-{d.step}", NOW, outcomes.also(
            d, source="dispatcher", status="sent", now=NOW)) for d in batch))

    async with ledger.engine.connect() as connection:
        stored = (await connection.execute(select(notifier_tables.outbox.c.value))).scalars().all()
    events = [DeliveryStatusChanged.model_validate_json(value) for value in stored]
    assert sorted((e.delivery_id, e.status) for e in events) == sorted((d.id, "sent") for d in claimed[:4])


async def test_a_write_that_fails_does_not_take_the_others_written_with_it_down(ledger: DeliveryLedger) -> None:
    await record(ledger, *(intent(step=f"step_{i}") for i in range(3)))
    claimed = await ledger.claim_due(NOW, limit=10, lease=LEASE)

    def also(n: int) -> AlsoRecord:
        async def record_with_it(connection: AsyncConnection) -> None:
            await ledger.record(connection, [intent(step=f"recorded_with_{n}")], NOW)
            if n == 1:
                raise RuntimeError("the outbox is full")
        return AlsoRecord(run=record_with_it)

    results = await asyncio.gather(*(ledger.mark_sent(d, f"SM{n}", NOW, also(n)) for n, d in enumerate(claimed)),
                                   return_exceptions=True)
    assert results[0] is True and results[2] is True and isinstance(results[1], RuntimeError)
    async with ledger.engine.connect() as connection:
        rows = {d.step: d.status for d in await ledger.for_appointment(connection, "apt-1")}
    # What failed is rolled back with the row it went with; the others are recorded with theirs.
    assert rows == {claimed[0].step: DeliveryStatus.SENT, claimed[1].step: DeliveryStatus.SENDING,
                    claimed[2].step: DeliveryStatus.SENT, "recorded_with_0": DeliveryStatus.PENDING,
                    "recorded_with_2": DeliveryStatus.PENDING}


async def test_among_outcomes_written_together_one_whose_claim_ran_out_changes_nothing(ledger: DeliveryLedger) -> None:
    await record(ledger, *(intent(step=f"step_{i}") for i in range(3)))
    first, second, third = await ledger.claim_due(NOW, limit=10, lease=LEASE)
    lost = replace(second, claim_token="a-claim-that-ran-out")
    assert list(await asyncio.gather(
        *(ledger.mark_sent(d, f"SM-{d.step}", NOW) for d in (first, lost, third))
    )) == [True, False, True]
    async with ledger.engine.connect() as connection:
        rows = {d.step: (d.status, d.provider_id) for d in await ledger.for_appointment(connection, "apt-1")}
    assert rows == {first.step: (DeliveryStatus.SENT, f"SM-{first.step}"), second.step: (DeliveryStatus.SENDING, None),
                    third.step: (DeliveryStatus.SENT, f"SM-{third.step}")}


async def test_among_messages_checked_together_only_the_opted_out_one_is_held_back(ledger: DeliveryLedger) -> None:
    await SuppressionList(ledger.engine).suppress("email", "sam@example.com", "unsubscribe_link", NOW)
    await record(ledger, intent(step="a"), replace(intent(step="b"), recipient="Sam@example.com"), intent(step="c"))
    claimed = await ledger.claim_due(NOW, limit=10, lease=LEASE)
    started = await asyncio.gather(*(ledger.begin_attempt(d, NOW + timedelta(seconds=5), LEASE) for d in claimed))
    assert {d.step: s for d, s in zip(claimed, started, strict=True)} == {
        "a": AttemptStart.STARTED, "b": AttemptStart.OPTED_OUT, "c": AttemptStart.STARTED}
    # The two started leases run from the check; the held-back one still has its claim's.
    assert await ledger.next_due_at() == NOW + LEASE


async def test_a_claim_to_send_says_which_patients_opted_out_of_the_channel(ledger: DeliveryLedger) -> None:
    await SuppressionList(ledger.engine).suppress("email", "alex@example.com", "unsubscribe_link", NOW)
    staff = DeliveryIntent("apt-1", "staff_alert:c1", "email", 1, "staff_alert", "Alex@Example.com ", "en-CA", NOW)
    other = replace(intent(step="reminder_24h"), recipient="sam@example.com")
    await record(ledger, intent(), replace(intent(step="reminder_2h"), recipient=" ALEX@example.com"), staff, other,
                 intent(channel="sms"))
    claimed = await ledger.claim_to_send(NOW, limit=10, lease=LEASE, channel="email")
    assert {c.delivery.step: c.opted_out for c in claimed} == {
        "confirmation": True, "reminder_2h": True, "staff_alert:c1": False, "reminder_24h": False}
    # Claimed all the same: the dispatcher records why it does not send them.
    assert await ledger.counts_by_status() == {"sending": 4, "pending": 1}


@pytest.fixture
async def thousands_of_emails_due(postgres: PostgresServer) -> AsyncIterator[DeliveryLedger]:
    """A PostgreSQL ledger with 3,000 pending emails, all due, the earliest last recorded; no texts."""
    engine = create_engine(await create_postgres_database(postgres))
    await create_tables(engine, NOTIFIER_SCHEMA)
    due = [replace(intent(step=f"reminder-{n}", due_in=-timedelta(seconds=n)), appointment_id=f"apt-{n}")
           for n in range(3_000)]
    async with engine.begin() as connection:
        await connection.execute(deliveries.insert(), rows_of(due, NOW))
        await connection.exec_driver_sql("ANALYZE deliveries")
    yield DeliveryLedger(engine)
    await engine.dispose()


def rows_read_by(ledger: DeliveryLedger, marker: str) -> list[int]:
    """For each statement containing `marker` the ledger runs from now on: the rows of deliveries it
    read (kept or filtered out), as PostgreSQL's EXPLAIN ANALYZE counts them."""
    read: list[int] = []

    def explain(_connection: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if marker in statement and not statement.startswith("EXPLAIN"):
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
            [plan] = cursor.fetchall()[0][0]
            read.append(sum(node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
                            for node in _nodes(plan["Plan"]) if node.get("Relation Name") == "deliveries"))

    event.listen(ledger.engine.sync_engine, "before_cursor_execute", explain)
    return read


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(each for child in node.get("Plans", []) for each in _nodes(child))]


async def test_a_claim_among_thousands_due_reads_only_the_earliest_not_every_due_row(
    thousands_of_emails_due: DeliveryLedger,
) -> None:
    """The scheduler's claim walks the due messages in due order and stops at what it takes: it does not
    read and sort every due row to return the first few (100,000 due among a million made each claim
    0.3 s on PostgreSQL, and the drain crawled)."""
    ledger = thousands_of_emails_due
    read = rows_read_by(ledger, "FOR UPDATE SKIP LOCKED")

    claimed = await ledger.claim_to_send(NOW, 10, timedelta(seconds=60), "email")

    assert [c.delivery.step for c in claimed] == [f"reminder-{n}" for n in range(2_999, 2_989, -1)]
    assert len(read) == 1 and read[0] <= 20, f"the claim read {read} rows of deliveries to take 10"


async def test_when_the_next_text_is_due_is_found_without_walking_the_pending_emails(
    thousands_of_emails_due: DeliveryLedger,
) -> None:
    """The dispatcher asks each channel when its next message is due; no text pending must not mean
    reading every pending email (with a million pending, each answer took 0.1-0.5 s). Asked as a
    long-running dispatcher asks: its statements are prepared once, and PostgreSQL plans them for any
    status and channel (a generic plan)."""
    ledger = thousands_of_emails_due
    event.listen(ledger.engine.sync_engine, "connect",
                 lambda connection, _record: _generic_plans(connection))
    await ledger.engine.dispose()  # connections from now on plan as prepared statements do in the long run
    read = rows_read_by(ledger, "min(deliveries.")

    assert await ledger.next_due_at("sms") is None
    assert await ledger.next_due_at("email") == NOW - timedelta(seconds=2_999)

    assert read and max(read) <= 2, f"rows of deliveries read: {read}"
    assert await ledger.due_backlog(NOW) == (3_000, NOW - timedelta(seconds=2_999))


def _generic_plans(connection: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("SET plan_cache_mode = force_generic_plan")
    cursor.close()


async def test_a_claim_takes_what_it_found_by_id_without_walking_every_due_row_on_sqlite(tmp_path: Any) -> None:
    """The claim finds the earliest due, then takes them by their ids. SQLite has no statistics to plan by:
    asked again whether each is still due, it walked every due row of the channel by the status index for
    each claim of a dozen (with 100,000 due at once, a drain that slows as it goes)."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/ledger.db")
    await create_tables(engine, NOTIFIER_SCHEMA)
    due = [replace(intent(step=f"reminder-{n}", due_in=-timedelta(seconds=n)), appointment_id=f"apt-{n}")
           for n in range(300)]
    async with engine.begin() as connection:
        await connection.execute(deliveries.insert(), rows_of(due, NOW))
    statements = statements_of(engine)
    try:
        claimed = await DeliveryLedger(engine).claim_to_send(NOW, 10, timedelta(seconds=60), "email")
        steps = await plan_steps(engine, statements, "deliveries", kinds=("UPDATE",))
    finally:
        await engine.dispose()
    assert [c.delivery.step for c in claimed] == [f"reminder-{n}" for n in range(299, 289, -1)]
    assert steps and all("(id=?)" in step for step in steps), steps


async def test_an_opt_out_and_a_look_for_an_earlier_send_find_one_address_by_its_index_on_sqlite(
    tmp_path: Any,
) -> None:
    """An opt-out cancels what is pending to one address; a text whose outcome is unknown is looked for
    among those already sent to its number. Both went through every pending message of the channel (the
    status index), or every message, holding SQLite's write lock while a STOP was applied."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/ledger.db")
    await create_tables(engine, NOTIFIER_SCHEMA)
    texts = [replace(intent(step="reminder", channel="sms"), appointment_id=f"apt-{n}", recipient=f"+1416555{n:04d}")
             for n in range(300)]
    async with engine.begin() as connection:
        await connection.execute(deliveries.insert(), rows_of(texts, NOW))
    statements = statements_of(engine)
    ledger = DeliveryLedger(engine)
    try:
        async with engine.begin() as connection:
            cancelled = await ledger.cancel_pending_to(connection, "sms", "+14165550007", "opted_out", NOW)
        await ledger.provider_ids_to("sms", "+14165550008")
        steps = await plan_steps(engine, statements, "deliveries", kinds=("SELECT", "UPDATE"))
    finally:
        await engine.dispose()
    assert cancelled == 1
    assert len(steps) == 2 and all("(recipient=? AND channel=?)" in step for step in steps), steps
