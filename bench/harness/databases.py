"""A fresh database per run: a new SQLite file, or a new database on the benchmark's PostgreSQL server."""
from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg

from tests.support.postgres_server import PostgresServer


def sqlite_url(workdir: Path, name: str) -> str:
    return f"sqlite+aiosqlite:///{workdir}/{name}-{uuid.uuid4().hex[:6]}.db"


async def new_postgres_database(server: PostgresServer, name: str) -> str:
    """CREATE DATABASE on the server; returns its SQLAlchemy (asyncpg) URL."""
    database = f"{name}_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(server.dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{database}"')
    finally:
        await connection.close()
    base, _, _ = server.async_url.rpartition("/")
    return f"{base}/{database}"
