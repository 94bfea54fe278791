"""What a channel is asked to deliver, and how a delivery can fail."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime_type: str  # e.g. "text/calendar; method=REQUEST"
    content_id: str | None = None  # set: shown inside the HTML, which refers to it as "cid:<content_id>"


@dataclass(frozen=True)
class EmailMessage:
    to: str
    subject: str
    text: str
    html: str
    attachments: tuple[Attachment, ...] = ()
    message_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SmsMessage:
    to: str  # E.164
    body: str


class DeliveryError(Exception):
    """A channel refused or failed a delivery; `code` is the provider's error code if any."""

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TransientDeliveryError(DeliveryError):
    """Worth retrying later with backoff (server down, rate limited, unreachable)."""


class OutcomeUnknownError(TransientDeliveryError):
    """The provider did not answer a request it may have acted on (a timeout, a connection lost once the
    request was sent): whether the message went out is unknown. Before it is sent again, the provider is
    asked whether it already has it."""


class ChannelUnavailableError(TransientDeliveryError):
    """The whole channel cannot send (credentials refused, account suspended): not this message's
    fault; every message waits until the channel works again."""


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help (recipient opted out, invalid number, rejected address)."""


class EmailSender(Protocol):
    async def send(self, message: EmailMessage) -> str:
        """Deliver the message; return the provider's id for it."""
        ...


class SmsSender(Protocol):
    async def send(self, message: SmsMessage) -> str:
        """Deliver the message; return the provider's id for it (Twilio's SM… sid)."""
        ...


@runtime_checkable
class SmsHistory(Protocol):
    async def find_sent(
        self, message: SmsMessage, since: datetime, exclude: frozenset[str] = frozenset()
    ) -> str | None:
        """The provider's id of this exact message (same recipient and body) sent since `since`,
        if there is one: asked before resending a message whose earlier attempt has an unknown outcome.
        Ids in `exclude` (already on record for other messages with the same words) are not it."""
        ...
