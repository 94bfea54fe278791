"""How to reach a patient, in which language, and what they agreed to receive."""
from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

Locale = Literal["en-CA", "fr-CA"]
CLINIC_TIME_ZONE = "America/Toronto"


def to_e164(value: str) -> str:
    """Accept a phone number in E.164 (or a North American number) and return it in E.164."""
    try:
        number = phonenumbers.parse(value, "CA")
    except phonenumbers.NumberParseException as error:
        raise ValueError(f"not a phone number: {error}") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number; use E.164, e.g. +14165550123")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def known_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}, e.g. America/Toronto") from None
    return value


E164Phone = Annotated[str, AfterValidator(to_e164)]
TimeZoneName = Annotated[str, AfterValidator(known_time_zone)]


class ChannelConsent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    email: bool = True
    sms: bool = False


class PatientContact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    patient_id: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr | None = None
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
