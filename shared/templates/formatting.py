"""Dates, times and treatment names as a patient reads them in their own language."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import phonenumbers
from babel import Locale
from babel.dates import format_date, format_time

# Parsed once: babel given a locale's name parses it and looks its data up again at each call.
_BABEL_LOCALES = {"en-CA": Locale.parse("en_CA"), "fr-CA": Locale.parse("fr_CA")}

APPOINTMENT_TYPE_NAMES: dict[str, dict[str, str]] = {
    "en-CA": {
        "dry_needling": "dry needling",
        "physiotherapy": "physiotherapy",
        "massage_therapy": "massage therapy",
        "chiropractic": "chiropractic care",
        "shockwave_therapy": "shockwave therapy",
        "injection_therapy": "injection therapy",
        "active_release_therapy": "active release therapy",
        "medical_acupuncture": "medical acupuncture",
    },
    "fr-CA": {
        "dry_needling": "puncture sèche",
        "physiotherapy": "physiothérapie",
        "massage_therapy": "massothérapie",
        "chiropractic": "chiropratique",
        "shockwave_therapy": "thérapie par ondes de choc",
        "injection_therapy": "thérapie par injection",
        "active_release_therapy": "technique de relâchement actif",
        "medical_acupuncture": "acupuncture médicale",
    },
}


def _local(moment: datetime | str, time_zone: str) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(ZoneInfo(time_zone))


def format_when(moment: datetime | str, locale: str, time_zone: str) -> str:
    """E.g. 'Thursday, November 26, 2026 at 10:00 a.m.' / 'jeudi 26 novembre 2026 à 10 h 00'."""
    local = _local(moment, time_zone)
    babel_locale = _BABEL_LOCALES[locale]
    joiner = " at " if locale == "en-CA" else " à "
    day = format_date(local, "full", locale=babel_locale)
    return f"{day}{joiner}{format_time(local, 'short', tzinfo=local.tzinfo, locale=babel_locale)}"


def format_day(moment: datetime | str, locale: str, time_zone: str) -> str:
    local = _local(moment, time_zone)
    text = format_date(local, "medium", locale=_BABEL_LOCALES[locale])
    if locale == "fr-CA" and local.day == 1:
        text = "1er" + text[1:]  # French writes the first of the month as an ordinal
    return text


def format_clock(moment: datetime | str, locale: str, time_zone: str) -> str:
    local = _local(moment, time_zone)
    return format_time(local, "short", tzinfo=local.tzinfo, locale=_BABEL_LOCALES[locale])


def appointment_type_name(appointment_type: str, locale: str) -> str:
    return APPOINTMENT_TYPE_NAMES[locale].get(appointment_type, appointment_type.replace("_", " "))


def format_phone(e164: str | None) -> str:
    """A Canadian number the way people write it ((416) 555-0199); others in international form."""
    if not e164:
        return ""
    number = phonenumbers.parse(e164)
    style = (phonenumbers.PhoneNumberFormat.NATIONAL if number.country_code == 1
             else phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return phonenumbers.format_number(number, style)
