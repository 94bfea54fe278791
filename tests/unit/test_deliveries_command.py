"""`clinic-notify deliveries APPOINTMENT_ID`: every message of an appointment across both ledgers, whole,
without the patient's addresses."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import MetaData
from typer.testing import CliRunner

from cli import app
from services.aftercare import tables as aftercare_tables
from services.notifier import tables as notifier_tables
from shared.database import create_engine, create_tables
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.model import DeliveryIntent

NOW = datetime(2031, 3, 14, 13, 30, tzinfo=UTC)
CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "clinic.yaml"
PHONE, EMAIL = "+14165550123", "alex.tremblay@example.com"


async def ledger_with_history(url: str, schema: MetaData, steps: list[tuple[str, str, str]]) -> None:
    engine = create_engine(url)
    await create_tables(engine, schema)
    ledger = DeliveryLedger(engine)
    intents = [DeliveryIntent("apt-7", step, channel, 1, template, PHONE if channel == "sms" else EMAIL, "en-CA", NOW,
                              {}, fallback_recipient=EMAIL if channel == "sms" else PHONE)
               for step, channel, template in steps]
    async with engine.begin() as connection:
        await ledger.record(connection, intents, NOW)
    for claimed in await ledger.claim_due(NOW, 10, timedelta(minutes=1), "sms"):
        await ledger.mark_sent(claimed, f"SM{claimed.step}", NOW)
        async with engine.begin() as connection:
            code = "30003" if claimed.step == "reminder_24h" else None
            await ledger.record_provider_status(connection, f"SM{claimed.step}",
                                                "undelivered" if code else "delivered", code, NOW)
            if code:
                await ledger.record_fallback(connection, claimed, "email", "reminder_24h:fallback", NOW)
    await engine.dispose()


def test_the_history_of_an_appointment_shows_each_message_its_provider_status_and_fallback(tmp_path: Path) -> None:
    notifier, aftercare = f"sqlite+aiosqlite:///{tmp_path}/n.db", f"sqlite+aiosqlite:///{tmp_path}/a.db"
    asyncio.run(ledger_with_history(notifier, notifier_tables.SCHEMA, [
        ("confirmation_for_a_long_step_name", "sms", "confirmation"), ("reminder_24h", "sms", "reminder")]))
    asyncio.run(ledger_with_history(aftercare, aftercare_tables.SCHEMA,
                                    [("check_in_24h_sms", "sms", "soreness_check_in")]))
    result = CliRunner().invoke(app, ["deliveries", "apt-7", "--database-url", notifier,
                                      "--aftercare-database-url", aftercare, "--clinic-config", str(CONFIG)])
    assert result.exit_code == 0, result.output
    out = result.output
    for whole in ("confirmation_for_a_long_step_name", "reminder_24h:fallback", "undelivered", "30003",
                  "delivered", "check_in_24h_sms", "Messages sent by notifier", "Messages sent by aftercare",
                  "→ email", "instead of reminder_24h"):
        assert whole in out, whole
    assert PHONE not in out and EMAIL not in out


def test_an_appointment_without_messages_says_so(tmp_path: Path) -> None:
    notifier = f"sqlite+aiosqlite:///{tmp_path}/n.db"
    asyncio.run(ledger_with_history(notifier, notifier_tables.SCHEMA, []))
    result = CliRunner().invoke(app, ["deliveries", "apt-8", "--database-url", notifier,
                                      "--clinic-config", str(CONFIG)])
    assert result.exit_code == 0 and "No message recorded for appointment apt-8" in result.output
