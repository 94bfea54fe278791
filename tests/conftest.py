"""Real servers shared by the whole test session: one Kafka broker, one PostgreSQL server."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from shared.kafka_admin import ensure_topics
from tests.support.kafka_server import KafkaServer, start_kafka
from tests.support.postgres_server import PostgresServer, start_postgres


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    server = start_kafka(tmp_path_factory.mktemp("kafka"))
    try:
        asyncio.run(ensure_topics(server.bootstrap_servers))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def unique_id() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh, empty database of each kind the services support."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite')}/test.db"
    server: PostgresServer = request.getfixturevalue("postgres")
    return await create_postgres_database(server)


async def create_postgres_database(server: PostgresServer) -> str:
    import asyncpg

    name = f"test_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(server.dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base, _, _ = server.async_url.rpartition("/")
    return f"{base}/{name}"
