"""How to reach a patient, in which language, and what they agreed to receive."""
from __future__ import annotations

import functools
import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, validate_email

from shared.events.text import DisplayName

Locale = Literal["en-CA", "fr-CA"]
CLINIC_TIME_ZONE = "America/Toronto"


E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"
_E164 = re.compile(E164_PATTERN)
ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"


# A patient's address comes with every event of every visit: each distinct one is checked once.
@functools.lru_cache(maxsize=65_536)
def to_e164(value: str) -> str:
    """Accept a phone number written in E.164 that is valid for its country; nothing is rewritten.

    A number in another form is refused rather than guessed at: "+1416CALLNOW" must not become
    a number we text.
    """
    if not _E164.fullmatch(value):
        raise ValueError("write the phone number in E.164: +, country code and number, digits only, e.g. +14165550123")
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number; use E.164, e.g. +14165550123") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number for its country; use E.164, e.g. +14165550123")
    return value


@functools.lru_cache(maxsize=65_536)
def normalized_email(value: str) -> str:
    """What pydantic's EmailStr checks and returns (email-validator, no DNS lookup)."""
    return validate_email(value)[1]


def known_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}, e.g. America/Toronto") from None
    return value


E164Phone = Annotated[
    str, AfterValidator(to_e164), WithJsonSchema({"type": "string", "pattern": E164_PATTERN})
]
TimeZoneName = Annotated[str, AfterValidator(known_time_zone)]
Email = Annotated[str, AfterValidator(normalized_email), WithJsonSchema({"type": "string", "format": "email"})]


class ChannelConsent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    email: bool = True
    sms: bool = False


class PatientContact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    patient_id: str = Field(min_length=1, max_length=100, pattern=ID_PATTERN)
    name: DisplayName
    email: Email | None = None
    phone: E164Phone | None = None
    locale: Locale = "en-CA"
    time_zone: TimeZoneName = CLINIC_TIME_ZONE
    consent: ChannelConsent = ChannelConsent()

    @property
    def first_name(self) -> str:
        return self.name.split()[0]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)
