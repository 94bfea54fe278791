"""The operator CLI: previews as patients see them, config checks, and ledger views that name no one."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cli import app
from cli.sms_segments import sms_size
from services.notifier.tables import SCHEMA as NOTIFIER_SCHEMA
from shared.database import create_engine, create_tables
from shared.events.appointment import APPOINTMENT_EVENT_TYPES
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.model import DeliveryIntent
from shared.templates.formatting import APPOINTMENT_TYPE_NAMES
from tests.support.events import booked, patient

REPO = Path(__file__).resolve().parents[2]
CLINIC_YAML = REPO / "deploy" / "clinic.yaml"
NOW = datetime.now(UTC).replace(microsecond=0)
runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"CLINIC_CONFIG_FILE": str(CLINIC_YAML)})
    return result.exit_code, result.output


# --- preview ---


def test_a_french_confirmation_sms_is_shown_in_french_with_its_segments_and_no_treatment() -> None:
    code, output = run("preview", "confirmation", "--channel", "sms", "--locale", "fr-CA")
    assert code == 0, output
    assert "est confirmé" in output and "Répondez ARRET pour vous désabonner." in output
    assert "segment" in output and ("UCS-2" in output or "GSM-7" in output)
    treatments = set(APPOINTMENT_TYPE_NAMES["fr-CA"].values()) | set(APPOINTMENT_TYPE_NAMES["en-CA"].values())
    assert not [name for name in treatments if name.lower() in output.lower()]
    assert "puncture" not in output.lower() and "needl" not in output.lower()


def test_a_confirmation_email_preview_writes_its_html_and_its_calendar_invitation(tmp_path: Path) -> None:
    code, output = run("preview", "confirmation", "--channel", "email", "--starts-at", "2026-07-14T16:00",
                       "--out", str(tmp_path))
    assert code == 0, output
    assert output.startswith("Subject: ")
    [html] = tmp_path.glob("*.html")
    [ics] = tmp_path.glob("*.ics")
    assert "<html" in html.read_text(encoding="utf-8").lower()
    calendar = ics.read_text(encoding="utf-8")
    assert "BEGIN:VCALENDAR" in calendar and "20260714T" in calendar


def test_a_preview_for_a_given_appointment_uses_its_details_and_its_patients_language(tmp_path: Path) -> None:
    who = patient(locale="fr-CA", name="Marie Gagnon")
    event = booked("apt-777", datetime(2026, 12, 3, 15, 30, tzinfo=UTC), who=who)
    event_file = tmp_path / "event.json"
    event_file.write_text(event.model_dump_json())

    result = runner.invoke(app, ["preview", "confirmation", "--channel", "email", "--event", str(event_file)])

    assert result.exit_code == 0, result.output
    assert "Bonjour Marie" in result.output and "3 décembre 2026 à 10 h 30" in result.output


def test_a_preview_refuses_an_invalid_event_naming_the_field(tmp_path: Path) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps({"event_type": "AppointmentBooked", "sequence": 0}))

    result = runner.invoke(app, ["preview", "confirmation", "--event", str(event_file)])

    assert result.exit_code == 1 and "sequence" in result.output


def test_the_template_list_shows_every_template_with_its_channels() -> None:
    code, output = run("preview", "--list")
    assert code == 0
    assert "soreness_check_in" in output and "email, sms" in output


def test_an_unknown_template_is_refused_with_the_known_names() -> None:
    code, output = run("preview", "confirmaton")
    assert code == 1
    assert "confirmaton" in output and "confirmation" in output


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),  # 153 per part once split
        ("é" * 160, "GSM-7", 1),  # é is in the GSM-7 alphabet
        ("ê" * 70, "UCS-2", 1),
        ("ê" * 71, "UCS-2", 2),  # 67 per part once split
        ("Merci – à bientôt", "UCS-2", 1),
        ("{" * 80, "GSM-7", 1),  # an escaped character counts twice
        ("{" * 81, "GSM-7", 2),
    ],
)
def test_segments_follow_the_encoding_the_text_needs(text: str, encoding: str, segments: int) -> None:
    size = sms_size(text)
    assert (size.encoding, size.segments) == (encoding, segments)


# --- check-config ---


def broken_copy(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    config = yaml.safe_load(CLINIC_YAML.read_text(encoding="utf-8"))
    change(config)
    path = tmp_path / "clinic.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def test_the_deployed_clinic_config_passes() -> None:
    code, output = run("check-config", str(CLINIC_YAML))
    assert code == 0, output
    assert "OK" in output


def test_a_step_naming_an_unknown_template_fails_with_the_step_and_the_template(tmp_path: Path) -> None:
    def unknown_template(config: dict[str, Any]) -> None:
        config["pre_session"]["dry_needling"]["steps"][1]["template"] = "reminder_typo"

    code, output = run("check-config", str(broken_copy(tmp_path, unknown_template)))
    assert code == 1
    assert "reminder_24h" in output and "reminder_typo" in output and "en-CA" in output and "fr-CA" in output


def test_an_unreadable_offset_fails_naming_the_field(tmp_path: Path) -> None:
    def bad_offset(config: dict[str, Any]) -> None:
        config["aftercare"]["check_ins"]["dry_needling"]["steps"][0]["offset"] = "tomorrow"

    code, output = run("check-config", str(broken_copy(tmp_path, bad_offset)))
    assert code == 1
    assert "offset" in output and "tomorrow" in output


def test_a_missing_config_file_fails(tmp_path: Path) -> None:
    code, output = run("check-config", str(tmp_path / "nowhere.yaml"))
    assert code == 1 and "not found" in output


# --- schema ---


def test_the_schema_is_json_naming_every_event_type(tmp_path: Path) -> None:
    code, output = run("schema")
    assert code == 0
    schema = json.loads(output)
    assert set(schema["discriminator"]["mapping"]) == {kind.__name__ for kind in APPOINTMENT_EVENT_TYPES}
    code, _ = run("schema", "--out", str(tmp_path / "contract.json"))
    assert code == 0 and json.loads((tmp_path / "contract.json").read_text(encoding="utf-8")) == schema


# --- scheduled and status ---


async def _fill_ledger(database_url: str) -> None:
    engine = create_engine(database_url)
    await create_tables(engine, NOTIFIER_SCHEMA)
    ledger = DeliveryLedger(engine)
    intents = [
        DeliveryIntent("apt-1001", "confirmation", "email", 1, "confirmation", "sam.privacy@example.com",
                       "en-CA", NOW - timedelta(minutes=5)),
        DeliveryIntent("apt-1001", "reminder_24h", "sms", 1, "reminder", "+14165550142", "en-CA",
                       NOW + timedelta(days=1)),
        DeliveryIntent("apt-1002", "guidance_48h", "email", 1, "pre_session_guidance", "kim@example.com",
                       "fr-CA", NOW + timedelta(days=2)),
    ]
    async with engine.begin() as connection:
        await ledger.record(connection, intents, NOW - timedelta(hours=1))
    [claimed] = await ledger.claim_due(NOW, 10, timedelta(seconds=60))
    await ledger.mark_failed(claimed, "550 mailbox sam.privacy@example.com unavailable", "550", NOW)
    await engine.dispose()


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/notifier.db"
    asyncio.run(_fill_ledger(url))
    return url


RECIPIENTS = ("sam.privacy@example.com", "+14165550142", "kim@example.com", "4165550142")


def test_scheduled_shows_the_steps_and_no_recipient(ledger_url: str) -> None:
    code, output = run("scheduled", "--database-url", ledger_url)
    assert code == 0, output
    assert "reminder_24h" in output and "guidance_48h" in output and "pre_session_guidance" in output
    assert "America/Toronto" in output
    assert not [address for address in RECIPIENTS if address in output]


def test_scheduled_for_one_appointment_includes_its_finished_messages(ledger_url: str) -> None:
    code, output = run("scheduled", "--database-url", ledger_url, "--appointment", "apt-1001")
    assert code == 0, output
    assert "confirmation" in output and "failed" in output and "guidance_48h" not in output


def test_status_counts_messages_and_lists_failures_without_the_address(ledger_url: str) -> None:
    code, output = run("status", "--database-url", ledger_url)
    assert code == 0, output
    assert "pending" in output and "failed" in output and "550" in output and "apt-1001" in output
    assert "Oldest pending message due:" in output
    assert not [address for address in RECIPIENTS if address in output]


def test_the_database_url_may_come_from_the_environment(ledger_url: str) -> None:
    result = runner.invoke(app, ["status"], env={"NOTIFIER_DATABASE_URL": ledger_url,
                                                 "CLINIC_CONFIG_FILE": str(CLINIC_YAML)})
    assert result.exit_code == 0, result.output


def test_a_missing_or_empty_database_is_reported_as_unavailable(tmp_path: Path) -> None:
    code, output = run("status", "--database-url", f"sqlite+aiosqlite:///{tmp_path}/missing.db")
    assert code == 3 and "no SQLite database" in output
    assert not (tmp_path / "missing.db").exists()
    (tmp_path / "empty.db").touch()
    code, output = run("scheduled", "--database-url", f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    assert code == 3 and "cannot read the delivery ledger" in output


@pytest.fixture
def aftercare_url(tmp_path: Path) -> str:
    from services.aftercare.tables import SCHEMA, check_ins, replies

    url = f"sqlite+aiosqlite:///{tmp_path}/aftercare.db"
    now = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)

    async def populate() -> None:
        engine = create_engine(url)
        await create_tables(engine, SCHEMA)
        async with engine.begin() as connection:
            for appointment, status, score in (("apt-calm", "answered", 2), ("apt-quiet", "no_reply", None),
                                               ("apt-worried", "closed", 8)):
                await connection.execute(check_ins.insert().values(
                    id=f"ci-{appointment}", appointment_id=appointment, round=1, rounds=2, phone="+14165550123",
                    email="alex@example.com", locale="en-CA", context={}, due_at=now, status=status, score=score,
                    unreadable_replies=0, created_at=now, updated_at=now))
            await connection.execute(replies.insert().values(
                id="r1", message_sid="SM1", check_in_id="ci-apt-worried", via="sms", text="8 and chest pain",
                intent="score", score=8, red_flags=["chest_pain"], action="escalate", reasons=[], received_at=now))
        await engine.dispose()

    asyncio.run(populate())
    return url


def test_check_ins_show_scores_silences_and_escalations_without_patient_details(aftercare_url: str) -> None:
    code, output = run("check-ins", "--database-url", aftercare_url)
    assert code == 0, output
    assert "apt-worried" in output and "escalate" in output and "no_reply" in output
    assert "+14165550123" not in output and "alex@example.com" not in output and "chest pain" not in output
    code, output = run("check-ins", "--database-url", aftercare_url, "--status", "no_reply")
    assert "apt-quiet" in output and "apt-calm" not in output
