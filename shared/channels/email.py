"""Email delivery over SMTP (aiosmtplib), on a small pool of reused connections."""
from __future__ import annotations

import asyncio
import email.message
import email.utils
from datetime import UTC, datetime

import aiosmtplib

from shared.channels.messages import (
    ChannelUnavailableError,
    DeliveryError,
    EmailMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)

# Headers this sender writes itself; letting `message.headers` override them would
# break the MIME structure or make the returned Message-ID a lie.
_OWNED_HEADERS = frozenset(
    {"from", "to", "subject", "date", "message-id", "mime-version",
     "content-type", "content-transfer-encoding"}
)
# Authentication required (530), temporary authentication failure (454), credentials refused
# (535), too weak a mechanism (534): no message can go out until the account is fixed.
ACCOUNT_WIDE_SMTP_CODES = frozenset({454, 530, 534, 535})
_SMTP_FAILURES = (aiosmtplib.SMTPException, OSError, TimeoutError)


class SmtpEmailSender:
    """EmailSender on a pool of lazily opened SMTP connections, each used by one send at a time.

    SMTP is sequential per connection, so throughput grows with `pool_size`. A connection the
    server dropped is reopened for one more attempt.
    """

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        start_tls: bool = False,
        timeout: float = 10.0,
        pool_size: int = 4,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self._sender = sender
        self._envelope_sender = email.utils.parseaddr(sender)[1]
        if not self._envelope_sender:
            raise ValueError("sender must contain an address, e.g. 'Clinic <desk@example.ca>'")
        self.pool_size = pool_size
        self._connections = [
            aiosmtplib.SMTP(
                hostname=host,
                port=port,
                username=username,
                password=password,
                use_tls=use_tls,
                start_tls=start_tls,
                timeout=timeout,
            )
            for _ in range(pool_size)
        ]
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        for connection in self._connections:
            self._idle.put_nowait(connection)

    async def send(self, message: EmailMessage) -> str:
        mime = build_mime_message(message, self._sender, self._envelope_domain())
        smtp = await self._idle.get()
        try:
            try:
                await _send_on(smtp, mime, self._envelope_sender, message.to)
            except aiosmtplib.SMTPServerDisconnected:
                # The server may drop an idle connection; one fresh attempt is worth it.
                smtp.close()
                await self._send_without_retry(smtp, mime, message.to)
            except _SMTP_FAILURES as exc:
                raise _delivery_error(smtp, exc) from exc
        finally:
            self._idle.put_nowait(smtp)
        return str(mime["Message-ID"])

    async def close(self) -> None:
        """Waits for the sends in flight, then closes every connection."""
        taken = [await self._idle.get() for _ in self._connections]
        try:
            for smtp in taken:
                if not smtp.is_connected:
                    continue
                try:
                    await smtp.quit()
                except _SMTP_FAILURES:
                    smtp.close()
        finally:
            for smtp in taken:
                self._idle.put_nowait(smtp)

    async def _send_without_retry(self, smtp: aiosmtplib.SMTP, mime: email.message.EmailMessage, to: str) -> None:
        try:
            await _send_on(smtp, mime, self._envelope_sender, to)
        except _SMTP_FAILURES as exc:
            raise _delivery_error(smtp, exc) from exc

    def _envelope_domain(self) -> str:
        return self._envelope_sender.rpartition("@")[2] or "localhost"


async def _send_on(smtp: aiosmtplib.SMTP, mime: email.message.EmailMessage, sender: str, to: str) -> None:
    if not smtp.is_connected:
        await smtp.connect()
    await smtp.send_message(mime, sender=sender, recipients=[to])


def _delivery_error(smtp: aiosmtplib.SMTP, exc: BaseException) -> DeliveryError:
    error = classify_smtp_error(exc)
    if isinstance(error, ChannelUnavailableError) or (
        isinstance(error, TransientDeliveryError) and error.code is None
    ):
        # Timeouts and drops leave the conversation in an unknown state; a refused login leaves
        # the connection unauthenticated.
        smtp.close()
    return error


def build_mime_message(
    message: EmailMessage, sender: str, id_domain: str
) -> email.message.EmailMessage:
    """multipart/alternative (text, HTML), wrapped in multipart/mixed when there are attachments."""
    clashing = {name for name in message.headers if name.lower() in _OWNED_HEADERS}
    if clashing:
        raise ValueError(f"headers set by the sender itself: {sorted(clashing)}")
    mime = email.message.EmailMessage()
    mime["From"] = sender
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = email.utils.format_datetime(datetime.now(UTC))
    mime["Message-ID"] = _message_id(message.message_id, id_domain)
    for name, value in message.headers.items():
        mime[name] = value
    mime.set_content(message.text)
    mime.add_alternative(message.html, subtype="html")
    html = next(part for part in mime.iter_parts() if part.get_content_subtype() == "html")
    for image in (attachment for attachment in message.attachments if attachment.content_id is not None):
        # multipart/related around the HTML: the picture is part of the page, not a file to open.
        maintype, subtype, params = _parse_mime_type(image.mime_type)
        html.add_related(image.content, maintype=maintype, subtype=subtype, cid=f"<{image.content_id}>",
                         filename=image.filename, params=params, disposition="inline")
    for attachment in (attachment for attachment in message.attachments if attachment.content_id is None):
        maintype, subtype, params = _parse_mime_type(attachment.mime_type)
        mime.add_attachment(
            attachment.content,
            maintype=maintype,
            subtype=subtype,
            filename=attachment.filename,
            params=params,
        )
    return mime


def classify_smtp_error(exc: BaseException) -> DeliveryError:
    """4xx replies and connection failures are transient; 5xx replies are permanent."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refusal.code for refusal in exc.recipients]
        return _by_reply_code(min(codes, default=550), "all recipients refused")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _by_reply_code(exc.code, type(exc).__name__)
    # Refused, timed out or dropped connections: the server never took the mail.
    return TransientDeliveryError(f"SMTP connection failed: {type(exc).__name__}")


def _by_reply_code(code: int, reason: str) -> DeliveryError:
    if code in ACCOUNT_WIDE_SMTP_CODES:
        return ChannelUnavailableError(f"SMTP {code}: {reason}", code=str(code))
    if 400 <= code < 500:
        return TransientDeliveryError(f"SMTP {code}: {reason}", code=str(code))
    return PermanentDeliveryError(f"SMTP {code}: {reason}", code=str(code))


def _message_id(given: str | None, domain: str) -> str:
    if given is None:
        return email.utils.make_msgid(domain=domain)
    return given if given.startswith("<") else f"<{given}>"


def _parse_mime_type(mime_type: str) -> tuple[str, str, dict[str, str]]:
    """'text/calendar; method=REQUEST' -> ('text', 'calendar', {'method': 'REQUEST'})."""
    probe = email.message.EmailMessage()
    probe["Content-Type"] = mime_type
    header = probe["Content-Type"]
    if header.defects:
        raise ValueError(f"invalid attachment mime type: {mime_type!r}")
    return probe.get_content_maintype(), probe.get_content_subtype(), dict(header.params)
