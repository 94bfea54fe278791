"""Builds a dispatcher with the real channels from settings."""
from __future__ import annotations

from datetime import timedelta
from types import MappingProxyType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.channels.email import SmtpEmailSender
from shared.channels.messages import EmailSender, SmsSender
from shared.channels.sms import TwilioSmsSender
from shared.clinic_config import ClinicConfig
from shared.clock import Clock
from shared.delivery.compose import MessageComposer
from shared.delivery.dispatcher import Dispatcher
from shared.delivery.outcomes import DeliveryOutcomes
from shared.delivery.retry import RetryPolicy
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.suppressions import SuppressionList
from shared.links import PatientLinks
from shared.settings import DeliverySettings
from shared.templates.catalogue import TemplateCatalogue
from shared.templates.required import REQUIRED_TEMPLATES


def patient_links(settings: DeliverySettings) -> PatientLinks:
    return PatientLinks(settings.patient_web_url, settings.link_secret.get_secret_value())


def build_channels(
    settings: DeliverySettings, status_callback_url: str | None = None
) -> tuple[SmtpEmailSender, TwilioSmsSender]:
    """`status_callback_url`: where Twilio posts each SMS's statuses (the service's public URL)."""
    smtp, twilio = settings.smtp, settings.twilio
    email = SmtpEmailSender(
        host=smtp.host,
        port=smtp.port,
        sender=smtp.sender,
        username=smtp.username,
        password=smtp.password.get_secret_value() if smtp.password else None,
        use_tls=smtp.use_tls,
        start_tls=smtp.start_tls,
        pool_size=smtp.pool_size,
    )
    sms = TwilioSmsSender(
        account_sid=twilio.account_sid,
        auth_token=twilio.auth_token.get_secret_value(),
        from_number=twilio.from_number,
        messaging_service_sid=twilio.messaging_service_sid,
        api_base_url=twilio.api_base_url,
        messages_per_second=twilio.messages_per_second,
        timeout=twilio.request_timeout_seconds,
        status_callback=status_callback_url,
    )
    return email, sms


def checked_catalogue(clinic: ClinicConfig) -> TemplateCatalogue:
    """The templates, refusing to start when one the system or the clinic's schedules use lacks a language."""
    catalogue = TemplateCatalogue()
    catalogue.verify_complete(set(REQUIRED_TEMPLATES) | clinic.scheduled_templates())
    return catalogue


def dispatch_options(settings: DeliverySettings) -> dict[str, Any]:
    """The dispatcher's retry policy, sends in flight per channel and idle poll, from settings."""
    return {
        "retry": RetryPolicy(
            first_delay=timedelta(seconds=settings.retry_first_delay_seconds),
            max_delay=timedelta(seconds=settings.retry_max_delay_seconds),
            horizon=timedelta(hours=settings.retry_horizon_hours),
            horizon_by_template=MappingProxyType(
                {name: timedelta(hours=hours) for name, hours in settings.retry_horizon_hours_by_template.items()}
            ),
        ),
        # One send per SMTP connection; SMS sends are paced by the sender's rate as well.
        "channel_limits": {"email": settings.smtp.pool_size, "sms": settings.twilio.concurrency},
        "idle_poll": timedelta(seconds=settings.dispatch_idle_poll_seconds),
    }


def build_dispatcher(
    *,
    service: str,
    settings: DeliverySettings,
    engine: AsyncEngine,
    clinic: ClinicConfig,
    clock: Clock,
    email: EmailSender,
    sms: SmsSender,
    outcomes: DeliveryOutcomes | None = None,
) -> Dispatcher:
    ledger = outcomes.ledger if outcomes is not None else DeliveryLedger(engine)
    return Dispatcher(
        service=service,
        ledger=ledger,
        composer=MessageComposer(checked_catalogue(clinic), clinic, patient_links(settings)),
        email=email,
        sms=sms,
        suppressions=SuppressionList(engine),
        clock=clock,
        outcomes=outcomes,
        **dispatch_options(settings),
    )
