"""What aftercare reads for one patient or one check-in is found by an index, not by reading every row of
a table that grows with each text the clinic sends or receives: the ledger's sent messages, the replies."""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aftercare.delivery_context import last_check_in_texted
from services.aftercare.store import CheckInStore
from services.aftercare.tables import SCHEMA
from services.aftercare.views import recent_check_ins
from shared.database import create_engine, create_tables
from tests.support.sqlite_plans import plan_steps, statements_of

NOW = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/aftercare.db")
    await create_tables(engine, SCHEMA)
    yield engine
    await engine.dispose()


async def test_the_last_check_in_text_to_a_phone_is_looked_up_by_the_phone_or_its_appointments(
    engine: AsyncEngine,
) -> None:
    statements = statements_of(engine)
    async with engine.connect() as connection:
        assert await last_check_in_texted(connection, "+14165550123") is None
    steps = await plan_steps(engine, statements, "deliveries")
    by_phone_or_appointment = ("(recipient=? AND channel=?)", "(appointment_id=?)")
    assert steps and all(any(key in step for key in by_phone_or_appointment) for step in steps), steps


async def test_a_check_ins_replies_are_looked_up_by_check_in(engine: AsyncEngine) -> None:
    store, statements = CheckInStore(engine), statements_of(engine)
    async with engine.connect() as connection:
        assert await store.paged_since(connection, "ci-1", NOW) == []
        assert await store.replies_to(connection, ["ci-1", "ci-2"]) == 0
    assert await recent_check_ins(engine, None, 50) == []
    steps = await plan_steps(engine, statements, "aftercare_replies")
    assert len(steps) >= 3 and all("(check_in_id=?" in step for step in steps), steps
