"""Two notifier instances on one PostgreSQL database: every message still goes out exactly once."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.conftest import create_postgres_database
from tests.e2e.arrivals import arrivals, wait_for_count, wait_until
from tests.e2e.conftest import System
from tests.e2e.test_pre_session_schedule import starting_in
from tests.support.kafka_server import free_port
from tests.support.postgres_server import PostgresServer
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture
def two_notifiers_on_postgres(system: System, postgres: PostgresServer) -> Iterator[list[ServiceProcess]]:
    database_url = asyncio.run(create_postgres_database(postgres))
    single = system.services["notifier"]
    single.stop()  # the two instances take over its consumer group
    instances = [
        ServiceProcess(f"notifier-pg-{n}", "services.notifier",
                       system.env | {"NOTIFIER_DATABASE_URL": database_url, "NOTIFIER_METRICS_PORT": str(free_port()),
                                     "NOTIFIER_HTTP_PORT": str(free_port())},
                       system.tmp / f"notifier-pg-{n}.log", "notifier_started")
        for n in (1, 2)
    ]
    try:
        for instance in instances:
            instance.start()
        yield instances
    finally:
        for instance in instances:
            instance.stop()
        single.start()


def test_two_instances_send_each_message_once(system: System, two_notifiers_on_postgres: list[ServiceProcess]) -> None:
    patients = [system.new_patient() for _ in range(8)]
    start = starting_in(16)
    for patient in patients:
        system.book(patient, start)
    for patient in patients:
        wait_for_count(system, patient, 5, timeout=40)
    wait_until(start.timestamp() + 2)
    for patient in patients:
        found = arrivals(system, patient)
        assert sorted(a.channel for a in found) == ["email", "email", "sms", "sms", "sms"], found
    sent_by = [instance.log_path.read_text().count('"message_sent"') for instance in two_notifiers_on_postgres]
    assert sum(sent_by) == 8 * 5 and all(count > 0 for count in sent_by), sent_by
