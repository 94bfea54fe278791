"""Email delivery over SMTP (aiosmtplib), on a small pool of reused connections."""
from __future__ import annotations

import asyncio
import base64
import binascii
import email.header
import email.message
import email.utils
import functools
import re
import urllib.parse
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import aiosmtplib

from shared.channels.messages import (
    Attachment,
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
_CRLF = "\r\n"
_FOLD_AT = 78  # RFC 5322: a header line should not be longer, and must not exceed 998
_LINE_LIMIT = 998
# local@domain with nothing to quote or encode (what a patient's address nearly always is)
_BARE_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


@dataclass(frozen=True)
class EncodedMail:
    """A message as it goes over the wire: `data` has CRLF line ends and is 7-bit unless an address
    needs SMTPUTF8 (`utf8`)."""

    message_id: str
    data: bytes
    utf8: bool = False


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
        mail = encode_message(message, self._sender, self._envelope_domain())
        smtp = await self._idle.get()
        try:
            try:
                await self._send_on(smtp, mail, message.to)
            except aiosmtplib.SMTPServerDisconnected:
                # The server may drop an idle connection; one fresh attempt is worth it.
                smtp.close()
                await self._send_without_retry(smtp, mail, message.to)
            except _SMTP_FAILURES as exc:
                raise _delivery_error(smtp, exc) from exc
        finally:
            self._idle.put_nowait(smtp)
        return mail.message_id

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

    async def _send_without_retry(self, smtp: aiosmtplib.SMTP, mail: EncodedMail, to: str) -> None:
        try:
            await self._send_on(smtp, mail, to)
        except _SMTP_FAILURES as exc:
            raise _delivery_error(smtp, exc) from exc

    async def _send_on(self, smtp: aiosmtplib.SMTP, mail: EncodedMail, to: str) -> None:
        if not smtp.is_connected:
            await smtp.connect()
        # Already flattened: aiosmtplib sends the bytes as they are (dot-stuffed).
        await smtp.sendmail(self._envelope_sender, [to], mail.data, mail_options=["SMTPUTF8"] if mail.utf8 else [])

    def _envelope_domain(self) -> str:
        return self._envelope_sender.rpartition("@")[2] or "localhost"


def _delivery_error(smtp: aiosmtplib.SMTP, exc: BaseException) -> DeliveryError:
    error = classify_smtp_error(exc)
    if isinstance(error, ChannelUnavailableError) or (
        isinstance(error, TransientDeliveryError) and error.code is None
    ):
        # Timeouts and drops leave the conversation in an unknown state; a refused login leaves
        # the connection unauthenticated.
        smtp.close()
    return error


def encode_message(message: EmailMessage, sender: str, id_domain: str) -> EncodedMail:
    """The message as sent: multipart/alternative (text; HTML, in multipart/related with the pictures it
    shows), wrapped in multipart/mixed with the attachments. Text is UTF-8 quoted-printable, files base64.

    Written directly rather than through `email.message.EmailMessage`, whose header parsing and folding
    cost more than everything else the dispatcher does per message."""
    clashing = {name for name in message.headers if name.lower() in _OWNED_HEADERS}
    if clashing:
        raise ValueError(f"headers set by the sender itself: {sorted(clashing)}")
    message_id = _message_id(message.message_id, id_domain)
    utf8 = not message.to.isascii()
    headers = [
        _sender_header(sender),
        # An address that is not ASCII cannot be encoded: it goes as UTF-8, with SMTPUTF8.
        f"To: {_checked('To', message.to)}" if utf8 else _address_header("To", message.to),
        _header("Subject", message.subject),
        f"Date: {email.utils.format_datetime(datetime.now(UTC))}",
        f"Message-ID: {_checked('Message-ID', message_id)}",
        *(_header(name, value) for name, value in message.headers.items()),
        "MIME-Version: 1.0",
    ]
    html = _text_part(message.html, "html")
    images = [_file_part(image, "inline") for image in message.attachments if image.content_id is not None]
    if images:
        html = _multipart("related", [html, *images], '; type="text/html"')
    body = _multipart("alternative", [_text_part(message.text, "plain"), html])
    files = [_file_part(file, "attachment") for file in message.attachments if file.content_id is None]
    if files:
        body = _multipart("mixed", [body, *files])
    text = _CRLF.join(headers) + _CRLF + body
    return EncodedMail(message_id, text.encode("utf-8" if utf8 else "ascii"), utf8)


def _multipart(subtype: str, parts: list[str], params: str = "") -> str:
    # Never inside quoted-printable or base64 text, where "=" is always followed by hex digits or a line end.
    boundary = f"=_{uuid.uuid4().hex}"
    delimiter = f"{_CRLF}--{boundary}{_CRLF}"
    return (f'Content-Type: multipart/{subtype};{_CRLF} boundary="{boundary}"{params}{_CRLF}{_CRLF}'
            f"--{boundary}{_CRLF}{delimiter.join(parts)}{_CRLF}--{boundary}--{_CRLF}")


def _text_part(text: str, subtype: str) -> str:
    # Line ends as the sender wrote them, in any convention, become CRLF; everything else is encoded.
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    body = binascii.b2a_qp(data, istext=True).decode("ascii").replace("\n", _CRLF)
    if not body.endswith(_CRLF):
        body += _CRLF
    return (f'Content-Type: text/{subtype}; charset="utf-8"{_CRLF}'
            f"Content-Transfer-Encoding: quoted-printable{_CRLF}{_CRLF}{body}")


def _file_part(attachment: Attachment, disposition: str) -> str:
    lines = [
        f"Content-Type: {_content_type(attachment.mime_type)}",
        "Content-Transfer-Encoding: base64",
        f"Content-Disposition: {disposition};{_CRLF} {_parameter('filename', attachment.filename)}",
    ]
    if attachment.content_id is not None:
        lines.append(f"Content-ID: <{_checked('Content-ID', attachment.content_id)}>")
    body = base64.encodebytes(attachment.content).decode("ascii").replace("\n", _CRLF)
    return _CRLF.join(lines) + _CRLF + _CRLF + body


@functools.lru_cache(maxsize=64)
def _content_type(mime_type: str) -> str:
    """'text/calendar; method=REQUEST' -> 'text/calendar; method="REQUEST"', checked (a few distinct values)."""
    probe = email.message.EmailMessage()
    probe["Content-Type"] = mime_type
    header = probe["Content-Type"]
    if header.defects:
        raise ValueError(f"invalid attachment mime type: {mime_type!r}")
    params = "".join(f";{_CRLF} {_parameter(name, value)}" for name, value in header.params.items())
    return f"{probe.get_content_type()}{params}"


def _parameter(name: str, value: str) -> str:
    if value.isascii() and value.isprintable():
        return f'{name}="{email.utils.quote(value)}"'
    return f"{name}*=utf-8''{urllib.parse.quote(value, safe='')}"  # RFC 2231


@functools.lru_cache(maxsize=16)
def _sender_header(sender: str) -> str:
    return _address_header("From", sender)


def _address_header(name: str, value: str) -> str:
    if _BARE_ADDRESS.fullmatch(value):
        return _folded(name, value)
    display_name, address = email.utils.parseaddr(_checked(name, value))
    if not address:
        raise ValueError(f"{name} has no address")
    return _folded(name, email.utils.formataddr((display_name, address), charset="utf-8"))


def _header(name: str, value: str) -> str:
    _checked(name, value)
    if value.isascii():
        if len(name) + 2 + len(value) <= _FOLD_AT or " " not in value:
            return _folded(name, value)
        return f"{name}: {email.header.Header(value, header_name=name).encode(linesep=_CRLF)}"
    # RFC 2047 encoded words, folded.
    return f"{name}: {email.header.Header(value, 'utf-8', header_name=name).encode(linesep=_CRLF)}"


def _folded(name: str, value: str) -> str:
    line = f"{name}: {value}"
    if len(line) > _LINE_LIMIT:
        raise ValueError(f"{name} header longer than an SMTP line")
    return line


def _checked(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"a line break in the {name} header")
    return value


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
