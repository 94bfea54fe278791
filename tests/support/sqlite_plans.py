"""What SQLite plans for the statements some code runs: to check that a lookup goes by an index. SQLite plans
without statistics unless asked (`ANALYZE`), so a plan found on an empty table is the plan on a full one."""
from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


def statements_of(engine: AsyncEngine) -> list[tuple[str, Any]]:
    """Every statement `engine` runs from now on, with its parameters (the list grows as they run)."""
    statements: list[tuple[str, Any]] = []
    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda _c, _cursor, statement, parameters, *_: statements.append((statement, parameters)))
    return statements


async def plan_steps(engine: AsyncEngine, statements: list[tuple[str, Any]], table: str,
                     kinds: tuple[str, ...] = ("SELECT", "UPDATE", "DELETE")) -> list[str]:
    """The steps of SQLite's plans of `statements` (those of `kinds`) that read `table`."""
    chosen = [(statement, parameters) for statement, parameters in statements if statement.startswith(kinds)]
    async with engine.connect() as connection:
        return [row[-1] for statement, parameters in chosen
                for row in (await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)).all()
                if table in row[-1]]
