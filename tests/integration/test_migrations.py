"""Schema migrations on SQLite and PostgreSQL.

A service's database made by `create_all` before there were migrations is adopted at start-up: every
row is kept, the new columns are empty, and the service's stores go on reading and writing it. The
newest revision of each service equals its tables (`alembic check`): a change to a table without its
revision fails here. A fresh database is upgraded from nothing and the services start on it.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from pydantic import BaseModel, SecretStr
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from cli import app as cli_app
from services.aftercare import bootstrap as aftercare_bootstrap
from services.aftercare import tables as aftercare_tables
from services.aftercare.migrations import MIGRATIONS as AFTERCARE
from services.aftercare.settings import AftercareSettings
from services.aftercare.store import CheckInStore
from services.booking_events import bootstrap as booking_bootstrap
from services.booking_events import tables as booking_tables
from services.booking_events.domain.idempotency import IdempotencyKey
from services.booking_events.migrations import MIGRATIONS as BOOKING
from services.booking_events.settings import BookingSettings
from services.booking_events.store import BookingStore
from services.notifier import bootstrap as notifier_bootstrap
from services.notifier import tables as notifier_tables
from services.notifier.migrations import MIGRATIONS as NOTIFIER
from services.notifier.settings import NotifierSettings
from services.notifier.store import AppointmentStateStore
from shared.database import UtcDateTime, create_engine
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.suppressions import SuppressionList
from shared.outbox.store import Outbox
from shared.schema_migrations import Migrations, describe, schema_differences, upgrade_to_head
from shared.settings import CommonSettings, DeliverySettings, KafkaSettings, TwilioSettings
from tests.conftest import create_postgres_database
from tests.support.kafka_server import KafkaServer, free_port
from tests.support.postgres_server import PostgresServer

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
PHONE = "+14165550123"
EMAIL = "patient@example.com"
CLINIC_FILE = Path(__file__).resolve().parents[2] / "deploy" / "clinic.yaml"


# The tables as `create_all` made them before there were migrations (git 470a4b1), one schema a service.
# Written out here on purpose: the project's own tables move on, these must not.

def _deliveries(metadata: MetaData) -> None:
    Table(
        "deliveries", metadata,
        Column("id", String(36), primary_key=True),
        Column("appointment_id", String(100), nullable=False),
        Column("step", String(100), nullable=False),
        Column("channel", String(10), nullable=False),
        Column("appointment_version", Integer, nullable=False),
        Column("template", String(100), nullable=False),
        Column("recipient", String(320), nullable=False),
        Column("locale", String(10), nullable=False),
        Column("context", JSON, nullable=False),
        Column("scheduled_for", UtcDateTime(), nullable=False),
        Column("due_at", UtcDateTime(), nullable=False),
        Column("expires_at", UtcDateTime()),
        Column("status", String(20), nullable=False),
        Column("attempts", Integer, nullable=False, default=0),
        Column("lease_until", UtcDateTime()),
        Column("reason", Text),
        Column("error_code", String(20)),
        Column("provider_id", String(200)),
        Column("sent_at", UtcDateTime()),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("updated_at", UtcDateTime(), nullable=False),
        UniqueConstraint("appointment_id", "step", "channel", "appointment_version", name="uq_delivery_intent"),
        Index("ix_deliveries_status_due", "status", "due_at"),
        Index("ix_deliveries_appointment", "appointment_id"),
    )


def _suppressions(metadata: MetaData) -> None:
    Table(
        "sms_suppressions", metadata,
        Column("phone", String(20), primary_key=True),
        Column("opted_out_at", UtcDateTime(), nullable=False),
        Column("source", String(50), nullable=False),
    )
    Table(
        "email_suppressions", metadata,
        Column("email", String(320), primary_key=True),
        Column("opted_out_at", UtcDateTime(), nullable=False),
        Column("source", String(50), nullable=False),
    )


def _outbox(name: str, metadata: MetaData) -> None:
    Table(
        name, metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("topic", String(200), nullable=False),
        Column("key", String(320), nullable=False),
        Column("value", Text, nullable=False),
        Column("headers", JSON, nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("published_at", UtcDateTime()),
        Index(f"ix_{name}_unpublished", "published_at", "id"),
    )


def notifier_before_migrations() -> MetaData:
    metadata = MetaData()
    _deliveries(metadata)
    Table(
        "appointments", metadata,
        Column("appointment_id", String(100), primary_key=True),
        Column("last_sequence", Integer, nullable=False),
        Column("status", String(20), nullable=False),
        Column("event", JSON, nullable=False),
        Column("updated_at", UtcDateTime(), nullable=False),
    )
    _suppressions(metadata)
    return metadata


def aftercare_before_migrations() -> MetaData:
    metadata = MetaData()
    Table(
        "aftercare_check_ins", metadata,
        Column("id", String(36), primary_key=True),
        Column("appointment_id", String(100), nullable=False),
        Column("round", Integer, nullable=False),
        Column("rounds", Integer, nullable=False),
        Column("phone", String(20)),
        Column("email", String(320)),
        Column("locale", String(10), nullable=False),
        Column("context", JSON, nullable=False),
        Column("due_at", UtcDateTime(), nullable=False),
        Column("status", String(20), nullable=False),
        Column("score", Integer),
        Column("note", Text),
        Column("answered_at", UtcDateTime()),
        Column("answered_via", String(10)),
        Column("unreadable_replies", Integer, nullable=False, default=0),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("updated_at", UtcDateTime(), nullable=False),
        UniqueConstraint("appointment_id", "round", name="uq_check_in_round"),
        Index("ix_check_ins_phone_due", "phone", "due_at"),
    )
    Table(
        "aftercare_replies", metadata,
        Column("id", String(36), primary_key=True),
        Column("message_sid", String(64), unique=True),
        Column("check_in_id", String(36)),
        Column("via", String(10), nullable=False),
        Column("text", Text),
        Column("intent", String(20), nullable=False),
        Column("score", Integer),
        Column("red_flags", JSON, nullable=False),
        Column("action", String(30), nullable=False),
        Column("reasons", JSON, nullable=False),
        Column("response", Text),
        Column("received_at", UtcDateTime(), nullable=False),
    )
    Table(
        "aftercare_consent_audit", metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("channel", String(10), nullable=False),
        Column("address", String(320), nullable=False),
        Column("subscribed", Boolean, nullable=False),
        Column("source", String(30), nullable=False),
        Column("occurred_at", UtcDateTime(), nullable=False),
    )
    _deliveries(metadata)
    _suppressions(metadata)
    _outbox("aftercare_outbox", metadata)
    return metadata


def booking_before_migrations() -> MetaData:
    metadata = MetaData()
    Table(
        "booking_appointments", metadata,
        Column("appointment_id", String(100), primary_key=True),
        Column("status", String(20), nullable=False),
        Column("sequence", Integer, nullable=False),
        Column("starts_at", UtcDateTime(), nullable=False),
        Column("location_id", String(100), nullable=False),
        Column("patient", Text, nullable=False),
        Column("details", Text, nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("updated_at", UtcDateTime(), nullable=False),
    )
    _outbox("booking_outbox", metadata)
    Table(
        "booking_idempotency_keys", metadata,
        Column("client", String(16), primary_key=True),
        Column("key", String(200), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("status_code", Integer, nullable=False),
        Column("response_body", Text, nullable=False),
        Column("created_at", UtcDateTime(), nullable=False, index=True),
    )
    return metadata


@dataclass(frozen=True)
class Service:
    name: str
    migrations: Migrations
    schema: MetaData
    before_migrations: Callable[[], MetaData]
    # What the service's own stores do with the rows `rows_before_migrations` put in (see below).
    still_works: Callable[[AsyncEngine, dict[str, list[dict[str, Any]]]], Awaitable[None]]


# ---- every table filled the way the service would have filled it ----

def value_for(column: Column[Any]) -> Any:
    kind = column.type
    if isinstance(kind, UtcDateTime):
        return NOW - timedelta(hours=2)
    if isinstance(kind, Boolean):
        return True
    if isinstance(kind, Integer):
        return 3
    if isinstance(kind, JSON):
        return {"kept": [column.name, 1]}
    assert isinstance(kind, String), f"no sample value for {column}"
    return f"{column.name}-kept"[: kind.length or 200]


# Values the services' stores read with meaning (statuses, channels, addresses, JSON bodies).
MEANINGFUL: dict[str, dict[str, Any]] = {
    "deliveries": {"channel": "sms", "status": "pending", "recipient": PHONE, "locale": "en-CA", "attempts": 0,
                   "due_at": NOW - timedelta(minutes=5), "expires_at": None, "lease_until": None,
                   "sent_at": None, "provider_id": None},
    "sms_suppressions": {"phone": PHONE},
    "email_suppressions": {"email": EMAIL},
    "appointments": {"status": "booked"},
    "aftercare_check_ins": {"status": "scheduled", "round": 1, "rounds": 2, "phone": PHONE, "email": EMAIL,
                            "locale": "fr-CA", "score": None, "unreadable_replies": 0},
    "aftercare_consent_audit": {"channel": "sms", "address": PHONE},
    "aftercare_outbox": {"published_at": None, "headers": {"event_type": "CheckInAnswered"}},
    "booking_outbox": {"published_at": None, "headers": {"event_type": "AppointmentBooked"}},
    "booking_idempotency_keys": {"response_body": '{"appointment_id": "apt-1"}', "status_code": 201},
}


async def fill(engine: AsyncEngine, metadata: MetaData) -> None:
    """One row in every table (the database assigns autoincrement ids, as it did in service)."""
    async with engine.begin() as connection:
        for table in metadata.sorted_tables:
            generated = table.autoincrement_column
            row = {column.name: value_for(column) for column in table.columns if column is not generated}
            row.update(MEANINGFUL.get(table.name, {}))
            await connection.execute(table.insert().values(row))


async def read_all(engine: AsyncEngine, metadata: MetaData) -> dict[str, list[dict[str, Any]]]:
    """Every row of the given tables, their columns only, in primary-key order."""
    async with engine.connect() as connection:
        return {
            table.name: [dict(row._mapping) for row in await connection.execute(
                select(table).order_by(*table.primary_key.columns))]
            for table in metadata.sorted_tables
        }


# ---- what each service's stores do with a migrated database ----

async def the_ledger_still_works(engine: AsyncEngine, before: dict[str, list[dict[str, Any]]]) -> None:
    ledger = DeliveryLedger(engine)
    [claimed] = await ledger.claim_due(NOW, limit=10, lease=timedelta(seconds=60))
    assert claimed.id == before["deliveries"][0]["id"] and claimed.claim_token is not None
    assert await ledger.mark_sent(claimed, "SM-after-migration", NOW)
    assert await ledger.counts_by_status() == {"sent": 1}
    suppressions = SuppressionList(engine)
    assert await suppressions.is_suppressed("sms", PHONE) and await suppressions.is_suppressed("email", EMAIL)


async def the_notifier_still_works(engine: AsyncEngine, before: dict[str, list[dict[str, Any]]]) -> None:
    await the_ledger_still_works(engine, before)
    appointment = before["appointments"][0]
    async with engine.connect() as connection:
        state = await AppointmentStateStore(engine).get(connection, appointment["appointment_id"])
    assert state is not None and state.last_sequence == appointment["last_sequence"]
    assert json.loads(state.event) == appointment["event"]


class Probe(BaseModel):
    event_type: str = "MigrationProbe"


async def the_outbox_still_works(engine: AsyncEngine, table: Table, migrated: dict[str, Any]) -> None:
    outbox = Outbox(table)
    async with engine.begin() as connection:
        added = await outbox.add(connection, topic="probe", key="k", event=Probe(), now=NOW)
    assert added > migrated["id"]  # the id sequence carries on after the migrated rows
    unpublished = await outbox.oldest_unpublished(engine, limit=10)
    assert [message.id for message in unpublished] == [migrated["id"], added]
    assert unpublished[0].value == migrated["value"] and unpublished[0].headers == migrated["headers"]
    await outbox.mark_published(engine, [migrated["id"], added], NOW)
    assert (await outbox.backlog(engine)).unpublished == 0


async def aftercare_still_works(engine: AsyncEngine, before: dict[str, list[dict[str, Any]]]) -> None:
    await the_ledger_still_works(engine, before)
    check_in = before["aftercare_check_ins"][0]
    async with engine.connect() as connection:
        found = await CheckInStore(engine).get(connection, check_in["id"])
    assert found is not None and found.status == "scheduled" and found.phone == PHONE
    await the_outbox_still_works(engine, aftercare_tables.outbox, before["aftercare_outbox"][0])


async def booking_still_works(engine: AsyncEngine, before: dict[str, list[dict[str, Any]]]) -> None:
    stored = before["booking_idempotency_keys"][0]
    found = await BookingStore(engine).find_response(
        IdempotencyKey(stored["client"], stored["key"], stored["fingerprint"])
    )
    assert found is not None and found.status_code == 201 and found.body == {"appointment_id": "apt-1"}
    await the_outbox_still_works(engine, booking_tables.outbox, before["booking_outbox"][0])


SERVICES = {
    "notifier": Service("notifier", NOTIFIER, notifier_tables.SCHEMA, notifier_before_migrations,
                        the_notifier_still_works),
    "aftercare": Service("aftercare", AFTERCARE, aftercare_tables.SCHEMA, aftercare_before_migrations,
                         aftercare_still_works),
    "booking_events": Service("booking_events", BOOKING, booking_tables.SCHEMA, booking_before_migrations,
                              booking_still_works),
}


@pytest.fixture(params=list(SERVICES))
def service(request: pytest.FixtureRequest) -> Service:
    return SERVICES[request.param]


@pytest.fixture
async def engine(database_url: str):
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def create_all(engine: AsyncEngine, metadata: MetaData) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)


async def differences(engine: AsyncEngine, service: Service, metadata: MetaData | None = None) -> list[str]:
    async with engine.connect() as connection:
        found = await connection.run_sync(schema_differences, service.migrations, metadata or service.schema)
    return describe(found)


async def revision_of(engine: AsyncEngine, service: Service) -> str | None:
    def read(connection: Any) -> str | None:
        table = Table(service.migrations.version_table, MetaData(), autoload_with=connection)
        return connection.execute(select(table.c.version_num)).scalar_one_or_none()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


# ---- the tests ----

async def test_the_head_revision_equals_the_tables_of_each_service(service: Service, engine: AsyncEngine) -> None:
    await upgrade_to_head(engine, service.migrations)
    missing = await differences(engine, service)
    assert not missing, (
        f"the {service.name} tables differ from what its migrations make:\n  " + "\n  ".join(missing)
        + f"\nwrite the missing revision with `clinic-notify db revision --service {service.name} -m "
        "\"<what changes>\"`, review it, and commit it with the table change"
    )
    assert await revision_of(engine, service) == service.migrations.head()


async def test_a_table_changed_without_its_revision_is_named(engine: AsyncEngine) -> None:
    service = SERVICES["notifier"]
    await upgrade_to_head(engine, service.migrations)
    changed = MetaData()
    for table in service.schema.sorted_tables:
        table.to_metadata(changed)
    changed.tables["deliveries"].append_column(Column("escalated_at", UtcDateTime()))
    Table("deliveries_archive", changed, Column("id", String(36), primary_key=True))
    assert set(await differences(engine, service, changed)) == {
        "add_column deliveries.escalated_at", "add_table deliveries_archive",
    }


async def test_the_baseline_revision_makes_the_tables_create_all_made_before_migrations(
    service: Service, engine: AsyncEngine
) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.upgrade(service.migrations.config(sync),
                                                               service.migrations.baseline))
    assert await differences(engine, service, service.before_migrations()) == []


async def test_a_database_made_before_migrations_keeps_every_row_and_the_service_goes_on_using_it(
    service: Service, engine: AsyncEngine
) -> None:
    old = service.before_migrations()
    await create_all(engine, old)
    await fill(engine, old)
    before = await read_all(engine, old)

    await upgrade_to_head(engine, service.migrations)

    assert await revision_of(engine, service) == service.migrations.head()
    assert await read_all(engine, old) == before  # same rows, same values in every column they had
    assert await differences(engine, service) == []
    async with engine.connect() as connection:
        for name, table in service.schema.tables.items():
            if name not in old.tables:
                continue
            added = [column for column in table.columns if column.name not in old.tables[name].columns]
            rows = (await connection.execute(select(*added))).all() if added else []
            for row in rows:
                for column, value in zip(added, row, strict=True):
                    assert column.nullable and column.server_default is None, f"{column} needs a backfill test"
                    assert value is None, f"{name}.{column.name} of a migrated row is {value!r}, not empty"
    await service.still_works(engine, before)


# The newest revision each service had while start-up still made tables with `create_all`: the revisions up
# to it skip what such a database already has.
LAST_MADE_BY_CREATE_ALL = {"notifier": "0002", "aftercare": "0002", "booking_events": "0003"}


async def test_a_database_made_by_create_all_just_before_migrations_is_adopted(
    service: Service, engine: AsyncEngine
) -> None:
    """The tables of the last version that made them with `create_all` (and no version table): nothing
    is added twice, the later revisions apply."""
    last = LAST_MADE_BY_CREATE_ALL[service.name]
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.upgrade(service.migrations.config(sync), last))
        await connection.execute(text(f"DROP TABLE {service.migrations.version_table}"))
    await upgrade_to_head(engine, service.migrations)
    assert await revision_of(engine, service) == service.migrations.head()
    assert await differences(engine, service) == []


async def test_a_database_made_by_create_all_of_this_version_is_adopted_and_reaches_head(
    service: Service, engine: AsyncEngine
) -> None:
    """Tables made by this version's `create_all` (as tests and benchmarks make them), no version table:
    adopted at the baseline, every later revision finds what it adds already there and moves on."""
    await create_all(engine, service.schema)
    await upgrade_to_head(engine, service.migrations)
    assert await revision_of(engine, service) == service.migrations.head()
    assert await differences(engine, service) == []


async def test_an_upgrade_at_head_changes_nothing(service: Service, engine: AsyncEngine) -> None:
    await upgrade_to_head(engine, service.migrations)
    await upgrade_to_head(engine, service.migrations)
    assert await revision_of(engine, service) == service.migrations.head()


async def test_a_database_with_only_some_of_its_tables_is_refused_not_guessed(engine: AsyncEngine) -> None:
    service = SERVICES["aftercare"]
    partial = MetaData()
    service.before_migrations().tables["deliveries"].to_metadata(partial)
    await create_all(engine, partial)
    with pytest.raises(RuntimeError, match="lacks"):
        await upgrade_to_head(engine, service.migrations)


@pytest.mark.postgres
@pytest.mark.parametrize("made_before_migrations", [False, True], ids=["empty", "made-before-migrations"])
async def test_instances_starting_together_on_postgresql_upgrade_once(
    postgres: PostgresServer, made_before_migrations: bool
) -> None:
    service = SERVICES["aftercare"]
    url = await create_postgres_database(postgres)
    engines = [create_engine(url) for _ in range(4)]
    try:
        if made_before_migrations:
            await create_all(engines[0], service.before_migrations())
            await fill(engines[0], service.before_migrations())
        await asyncio.gather(*(upgrade_to_head(engine, service.migrations) for engine in engines))
        assert await revision_of(engines[0], service) == service.migrations.head()
        assert await differences(engines[0], service) == []
    finally:
        for engine in engines:
            await engine.dispose()


def test_the_db_commands_upgrade_and_check_a_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/booking.db"
    runner = CliRunner()
    checked = runner.invoke(cli_app, ["db", "check", "--service", "booking_events", "--url", url])
    assert checked.exit_code == 1 and "add_table booking_appointments" in checked.output
    upgraded = runner.invoke(cli_app, ["db", "upgrade", "--service", "booking_events", "--url", url])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"at revision {BOOKING.head()}" in upgraded.output
    checked = runner.invoke(cli_app, ["db", "check", "--service", "booking_events", "--url", url])
    assert checked.exit_code == 0, checked.output


# ---- a fresh database, through the services' own start-up ----

def started_service(name: str, database_url: str, kafka: KafkaServer, port: int) -> tuple[Any, Any]:
    """(bootstrap module, parts) of the service on the database, the real broker, no metrics, no sending."""
    common = CommonSettings(clinic_config_file=CLINIC_FILE,
                            kafka=KafkaSettings(bootstrap_servers=kafka.bootstrap_servers))
    delivery = DeliverySettings(link_secret=SecretStr("a-test-secret-of-at-least-32-bytes"),
                                patient_web_url="http://testserver",
                                twilio=TwilioSettings(api_base_url="http://127.0.0.1:9"))
    if name == "notifier":
        return notifier_bootstrap, notifier_bootstrap.build(NotifierSettings(
            database_url=database_url, group_id=f"notifier-{port}", metrics_port=None, http_port=port,
            common=common, delivery=delivery))
    if name == "aftercare":
        return aftercare_bootstrap, aftercare_bootstrap.build(AftercareSettings(
            database_url=database_url, group_id=f"aftercare-{port}", metrics_port=None, http_port=port,
            common=common, delivery=delivery))
    return booking_bootstrap, booking_bootstrap.build(BookingSettings(
        database_url=database_url, metrics_port=None, http_port=port, common=common))


@pytest.mark.kafka
async def test_on_a_fresh_database_each_service_creates_its_schema_and_starts(
    service: Service, database_url: str, kafka: KafkaServer
) -> None:
    port = free_port()
    module, parts = started_service(service.name, database_url, kafka, port)
    stop = asyncio.Event()
    running = asyncio.create_task(module.run(parts, stop))
    try:
        async with httpx.AsyncClient() as client, asyncio.timeout(90):
            while True:
                assert not running.done(), running.exception()
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=60)
    engine = create_engine(database_url)
    try:
        assert await revision_of(engine, service) == service.migrations.head()
        assert await differences(engine, service) == []
    finally:
        await engine.dispose()
