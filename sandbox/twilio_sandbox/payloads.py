"""Twilio-shaped resources and errors, close enough for the twilio package to parse."""
from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

API_VERSION = "2010-04-01"
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")

# Messages mirror Twilio's wording but never echo phone numbers: they end up in logs.
ERROR_MESSAGES: dict[int, str] = {
    20001: "Invalid parameter",
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    21211: "The 'To' number is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}

# Twilio reports these after the create, in the message's status and its status callbacks: the
# create itself is answered 201. (30001-30999 are the "message delivery" errors.)
DELIVERY_ERROR_CODES = range(30001, 31000)

_GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("^{}\\[~]|€\f")


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def is_e164(number: str) -> bool:
    return bool(_E164.match(number))


def twilio_date(moment: datetime) -> str:
    """RFC 2822 in GMT, as Twilio writes dates in the 2010-04-01 API: Fri, 14 Mar 2031 09:30:00 +0000."""
    return format_datetime(moment.astimezone(UTC))


def error_body(code: int, status: int, message: str | None = None) -> dict[str, Any]:
    return {
        "code": code,
        "message": message or ERROR_MESSAGES.get(code, "Sandbox error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def num_segments(body: str) -> int:
    """GSM-7 fits 160 characters (153 per part); anything else is UCS-2: 70 (67 per part)."""
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENDED for ch in body):
        units = sum(2 if ch in _GSM7_EXTENDED else 1 for ch in body)
        single, per_part = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, per_part = 70, 67
    return 1 if units <= single else -(-units // per_part)


def message_resource(
    account_sid: str,
    to: str,
    from_: str | None,
    body: str,
    created: datetime,
    messaging_service_sid: str | None = None,
    direction: str = "outbound-api",
    status: str | None = None,
    sid: str | None = None,
) -> dict[str, Any]:
    """A Message resource as Twilio answers it (create, fetch, and each item of the list)."""
    sid = sid or new_sid("SM")
    now = twilio_date(created)
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
    if status is None:
        # Twilio answers "accepted" when a Messaging Service still has to pick the sender.
        status = "queued" if from_ else "accepted"
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": now,
        "date_sent": now if direction == "inbound" else None,
        "date_updated": now,
        "direction": direction,
        "error_code": None,
        "error_message": None,
        "from": from_,
        "messaging_service_sid": messaging_service_sid,
        "num_media": "0",
        "num_segments": str(num_segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": status,
        "subresource_uris": {
            "media": uri.replace(".json", "/Media.json"),
            "feedback": uri.replace(".json", "/Feedback.json"),
        },
        "to": to,
        "uri": uri,
    }
