"""The patient's web pages, rendered in their language."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.aftercare.pages.wording import WORDING
from shared.clinic_config import ClinicIdentity
from shared.templates.formatting import format_phone

_environment = Environment(loader=FileSystemLoader(str(Path(__file__).parent)),
                           autoescape=select_autoescape(["html", "j2"]))


def known_locale(locale: object) -> str:
    return locale if isinstance(locale, str) and locale in WORDING else "en-CA"


class PatientPages:
    def __init__(self, clinic: ClinicIdentity) -> None:
        self.clinic = clinic
        self.phone = format_phone(clinic.phone)

    def words(self, locale: str) -> dict[str, str]:
        return WORDING[known_locale(locale)]

    def page(self, locale: str, title_key: str, *paragraph_keys: str, status: int = 200,
             title: str | None = None, urgent: bool = False, **forms: Any) -> HTMLResponse:
        words = self.words(locale)
        paragraphs = [words[key] for key in paragraph_keys] + [words["call_clinic"].format(phone=self.phone)]
        html = _environment.get_template("page.html.j2").render(
            locale=known_locale(locale), title=title or words[title_key], paragraphs=paragraphs,
            urgent=words["urgent"] if urgent else None, clinic=self.clinic, clinic_phone=self.phone, **forms)
        return HTMLResponse(html, status_code=status)

    def expired(self, status: int = 410) -> HTMLResponse:
        return self.page("en-CA", "expired_title", "expired_text", status=status)
