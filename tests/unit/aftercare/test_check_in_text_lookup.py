"""When aftercare last texted a phone its check-in is read from the ledger by appointment: the ledger of a
clinic holds every message it ever sent, and a lookup walking those (by status and channel) on each reply
would grow with it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event

from services.aftercare.delivery_context import last_check_in_texted
from services.aftercare.tables import SCHEMA
from shared.database import create_engine, create_tables


async def test_the_last_check_in_text_to_a_phone_is_looked_up_by_its_appointments(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/aftercare.db")
    await create_tables(engine, SCHEMA)
    statements: list[tuple[str, Any]] = []
    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda _c, _cursor, statement, parameters, *_: statements.append((statement, parameters)))
    try:
        async with engine.connect() as connection:
            assert await last_check_in_texted(connection, "+14165550123") is None
            [(statement, parameters)] = statements
            plan = (await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)).all()
    finally:
        await engine.dispose()
    [ledger] = [row[-1] for row in plan if "deliveries" in row[-1]]
    assert "(appointment_id=?)" in ledger, plan
