"""The notifier assembled by `bootstrap.build` with fake channels and a fixed clock: nothing starts, and a
booking it handles is confirmed by email and SMS once."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.notifier import bootstrap
from services.notifier.settings import NotifierSettings
from services.notifier.tables import SCHEMA
from shared.channels.messages import EmailMessage, SmsMessage
from shared.clock import FixedClock
from shared.database import create_tables
from shared.settings import DeliverySettings, TwilioSettings
from tests.support.events import booked, in_hours

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


@dataclass
class Outbox:
    """Email and SMS channels that keep what they are given."""

    emails: list[EmailMessage] = field(default_factory=list)
    texts: list[SmsMessage] = field(default_factory=list)

    async def send_email(self, message: EmailMessage) -> str:
        self.emails.append(message)
        return f"email-{len(self.emails)}"

    async def send_sms(self, message: SmsMessage) -> str:
        self.texts.append(message)
        return f"SM{len(self.texts)}"


@dataclass
class Email:
    outbox: Outbox

    async def send(self, message: EmailMessage) -> str:
        return await self.outbox.send_email(message)


@dataclass
class Sms:
    outbox: Outbox

    async def send(self, message: SmsMessage) -> str:
        return await self.outbox.send_sms(message)


def settings(tmp_path: Path) -> NotifierSettings:
    return NotifierSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/notifier.db",
        delivery=DeliverySettings(link_secret="a-test-secret-of-at-least-32-bytes", twilio=TwilioSettings(api_base_url="http://127.0.0.1:9")),
    )


@pytest.fixture
async def parts_and_outbox(tmp_path: Path):
    outbox = Outbox()
    parts = bootstrap.build(settings(tmp_path), clock=FixedClock(NOW), email=Email(outbox), sms=Sms(outbox))
    await create_tables(parts.engine, SCHEMA)
    yield parts, outbox
    await bootstrap.close(parts)


async def test_building_the_notifier_starts_nothing(parts_and_outbox) -> None:
    parts, _ = parts_and_outbox
    assert [worker.name for worker in parts.workers] == ["consumer", "dispatcher", "outbox-relay", "web"]
    assert not parts.broker.running and parts.health.ok
    assert parts.own_channels == ()  # the channels were given: closing them is the caller's business


async def test_a_booking_handled_by_the_notifier_is_confirmed_by_email_and_sms_once(parts_and_outbox) -> None:
    parts, outbox = parts_and_outbox
    event = booked("apt-1", in_hours(72, NOW))
    decision = await parts.handler(event)
    assert decision.applied
    await parts.dispatcher.dispatch_due()
    await parts.handler(event)  # the same event again, as Kafka may deliver it
    await parts.dispatcher.dispatch_due()
    assert [mail.to for mail in outbox.emails] == ["alex.tremblay@example.com"]
    assert [text.to for text in outbox.texts] == ["+14165550123"]
    assert "confirmed" in outbox.emails[0].subject.lower()


def test_without_channels_given_the_notifier_builds_smtp_and_twilio_from_its_settings(tmp_path: Path) -> None:
    parts = bootstrap.build(settings(tmp_path))
    assert [type(channel).__name__ for channel in parts.own_channels] == ["SmtpEmailSender", "TwilioSmsSender"]
    assert parts.dispatcher.email is parts.own_channels[0] and parts.dispatcher.sms is parts.own_channels[1]
