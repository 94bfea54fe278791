"""The real PostgreSQL server accepts our role over TCP on loopback and keeps what we write."""

from __future__ import annotations

import asyncpg
import pytest

from tests.support.postgres_server import PostgresServer

pytestmark = pytest.mark.postgres


async def test_the_server_answers_over_tcp(postgres: PostgresServer) -> None:
    connection = await asyncpg.connect(postgres.dsn)
    try:
        assert await connection.fetchval("select 1") == 1
        assert await connection.fetchval("select inet_server_addr()::text") == "127.0.0.1/32"
    finally:
        await connection.close()


async def test_a_written_row_reads_back(postgres: PostgresServer) -> None:
    connection = await asyncpg.connect(postgres.dsn)
    try:
        await connection.execute(
            "create table deliveries (id serial primary key, patient text not null, channel text not null)"
        )
        await connection.execute(
            "insert into deliveries (patient, channel) values ($1, $2)", "patient-1", "sms"
        )
        row = await connection.fetchrow("select patient, channel from deliveries")
    finally:
        await connection.close()
    assert row is not None and dict(row) == {"patient": "patient-1", "channel": "sms"}


def test_the_async_url_names_the_asyncpg_driver(postgres: PostgresServer) -> None:
    assert postgres.async_url.startswith("postgresql+asyncpg://clinic:clinic@127.0.0.1:")
