"""The service databases on SQLite keep a commit through a power loss, not only a process crash."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from shared.database import create_engine


async def test_sqlite_commits_are_synced_to_disk_before_they_count(tmp_path: Path) -> None:
    # synchronous=NORMAL in WAL mode can lose the last commits on power loss, after the Kafka offset
    # of the event they record was already committed: the event would be lost. FULL (2) syncs the WAL
    # at each commit.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/service.db")
    try:
        async with engine.connect() as connection:
            journal = await connection.scalar(text("PRAGMA journal_mode"))
            synchronous = await connection.scalar(text("PRAGMA synchronous"))
    finally:
        await engine.dispose()
    assert (journal, synchronous) == ("wal", 2)
