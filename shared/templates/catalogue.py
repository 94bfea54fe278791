"""The message templates, per language and channel, and the check that none is missing."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from shared.templates.formatting import (
    appointment_type_name,
    format_clock,
    format_day,
    format_phone,
    format_when,
)

TEMPLATES_DIR = Path(__file__).resolve().parent / "files"
Locale = Literal["en-CA", "fr-CA"]
LOCALES: tuple[Locale, ...] = get_args(Locale)
EMAIL_PARTS = ("email.subject", "email.txt", "email.html")
SMS_PARTS = ("sms",)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class MissingTemplates(RuntimeError):
    pass


_DICT_ATTRIBUTES = frozenset(dir(dict))


class _DictContextEnvironment(Environment):
    """`a.b` looks in a dict's items first when `b` is not one of dict's own attributes.

    Jinja tries `getattr(a, "b")` before `a["b"]`: for the dicts a stored context is made of, that is an
    AttributeError raised and caught at every `appointment.starts_at`, the largest single cost of a
    render. The result is the same: a dict has no other attributes (`extra.get` is still the method)."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


def _parts(channel: str) -> tuple[str, ...]:
    return EMAIL_PARTS if channel == "email" else SMS_PARTS


class TemplateCatalogue:
    """Templates live in files/<locale>/<template>.<part>.j2; HTML parts are autoescaped.

    Each template is compiled once, on first use, and kept for the life of the process: the files
    do not change under a running service, so they are not checked again at each render."""

    def __init__(self, root: Path = TEMPLATES_DIR) -> None:
        self.root = root
        self.environment = _DictContextEnvironment(
            loader=FileSystemLoader(str(root)),
            autoescape=lambda name: name is not None and name.endswith(".html.j2"),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=False,
            cache_size=-1,
        )
        # Pure, and called with few distinct values (a day's appointment times, the clinic's numbers):
        # remembered rather than formatted again for every message.
        self.environment.filters["when"] = functools.lru_cache(maxsize=4096)(format_when)
        self.environment.filters["day"] = functools.lru_cache(maxsize=4096)(format_day)
        self.environment.filters["clock"] = functools.lru_cache(maxsize=4096)(format_clock)
        self.environment.filters["treatment"] = appointment_type_name
        self.environment.filters["phone"] = functools.lru_cache(maxsize=4096)(format_phone)

    def available(self) -> set[tuple[str, str, str]]:
        """(locale, template, channel) triples that have every part they need."""
        found: set[tuple[str, str, str]] = set()
        for locale in LOCALES:
            names = {path.name[: -len(".j2")] for path in (self.root / locale).glob("*.j2")}
            for name in names:
                template, _, part = name.partition(".")
                channel = "email" if part.startswith("email") else "sms"
                if all(f"{template}.{p}" in names for p in _parts(channel)):
                    found.add((locale, template, channel))
        return found

    def verify_complete(self, required: set[tuple[str, str]]) -> None:
        """Fail at start-up, not at send time, when a (template, channel) lacks a language."""
        have = self.available()
        missing = sorted(
            f"{locale}/{template}.{channel}"
            for template, channel in required
            for locale in LOCALES
            if (locale, template, channel) not in have
        )
        if missing:
            raise MissingTemplates("missing message templates: " + ", ".join(missing))

    def render_email(self, template: str, locale: str, context: dict[str, Any]) -> RenderedEmail:
        subject, text, html = (
            self._render(f"{locale}/{template}.{part}.j2", locale, context) for part in EMAIL_PARTS
        )
        return RenderedEmail(subject=" ".join(subject.split()), text=text, html=html)

    def render_sms(self, template: str, locale: str, context: dict[str, Any]) -> str:
        return " ".join(self._render(f"{locale}/{template}.sms.j2", locale, context).split())

    def _render(self, name: str, locale: str, context: dict[str, Any]) -> str:
        return self.environment.get_template(name).render(locale=locale, **context).strip() + "\n"
