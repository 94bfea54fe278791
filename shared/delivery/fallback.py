"""When a message that cannot reach a patient on its channel goes by the other one instead. Pure.

- An SMS the carrier reports undelivered or failed with 30003 (handset unreachable), 30005 (unknown
  number) or 30006 (landline or unreachable carrier) goes by email.
- An SMS to a landline goes by email without being tried: the number's type is looked up
  (`phonenumbers`, FIXED_LINE only) by the dispatcher right before sending, so a number changed on
  a later booking is judged as it is then. North American numbers are FIXED_LINE_OR_MOBILE, never
  FIXED_LINE: for them only the carrier's 30006 tells.
- An email the server refuses for good (an SMTP 5xx reply: the recipient refused, or the message)
  goes by SMS.
- Only to an address the patient agreed to (recorded with the message when it was planned:
  `fallback_recipient`), once (the fallback row's unique key), and never when the appointment
  already has the same message on the other channel: the patient never gets both. A fallback never
  falls back again.
- Never for staff messages: escalations have their own chain (backup, then lead).
"""
from __future__ import annotations

from collections.abc import Mapping

import phonenumbers

from shared.ledger.model import Delivery, is_staff_template

SMS_FALLBACK_CODES = frozenset({"30003", "30005", "30006"})
FALLBACK_STEP_SUFFIX = ":fallback"
LANDLINE = "landline"  # the reason an SMS to a landline is skipped
OTHER_CHANNEL = {"sms": "email", "email": "sms"}


def fallback_address(addresses: Mapping[str, str], channel: str) -> str | None:
    """At planning time: the patient's address on the other channel, among those they agreed to."""
    return addresses.get(OTHER_CHANNEL.get(channel, ""))


def is_landline(phone: str) -> bool:
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.FIXED_LINE


def unreachable_by(delivery: Delivery, *, status: str, error_code: str | None, reason: str | None = None) -> bool:
    """Whether this outcome means the message cannot reach the patient on its own channel: the
    provider's undelivered/failed, the dispatcher's failed, or skipped because of a landline."""
    if delivery.channel == "sms":
        if status == "skipped":
            return reason == LANDLINE
        return status in {"undelivered", "failed"} and error_code in SMS_FALLBACK_CODES
    if delivery.channel == "email":
        return status == "failed" and error_code is not None and error_code.startswith("5")
    return False


def fallback_channel(
    delivery: Delivery, *, status: str, error_code: str | None, reason: str | None = None
) -> str | None:
    """The channel to send this message by instead, or None."""
    if is_staff_template(delivery.template) or delivery.fallback_of is not None:
        return None
    if not delivery.fallback_recipient:
        return None
    if not unreachable_by(delivery, status=status, error_code=error_code, reason=reason):
        return None
    return OTHER_CHANNEL[delivery.channel]


def fallback_step(step: str) -> str:
    return f"{step}{FALLBACK_STEP_SUFFIX}"
