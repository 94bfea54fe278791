"""The clinician's page of a patient's soreness over a plan: the chart and every score, in the staff language."""
from __future__ import annotations

import base64
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.aftercare.domain.trajectory import Trajectory
from shared.templates.formatting import appointment_type_name

_environment = Environment(loader=FileSystemLoader(str(Path(__file__).parent)),
                           autoescape=select_autoescape(["html", "j2"]))

WORDS: dict[str, dict[str, Any]] = {
    "en-CA": {
        "title": "Soreness over the treatment plan",
        "patient": "Patient ID",
        "columns": ["Visit", "Visit date", "Check-in", "Answered", "Score", "Answered by"],
        "none": "No score yet.",
        "chart_alt": "Soreness scores over the plan, first to latest",
        "trend": {"rising": "rising", "falling": "falling", "steady": "steady"},
        "summary": "{count} scores, {trend} ({first}/10 to {latest}/10)",
        "one": "one score so far",
        "via": {"sms": "text", "web": "email link", "email": "email"},
        "notice": "Internal page for clinic staff. It contains personal health information.",
    },
    "fr-CA": {
        "title": "Douleur au fil du plan de traitement",
        "patient": "ID du patient",
        "columns": ["Visite", "Date de la visite", "Suivi", "Réponse", "Score", "Répondu par"],
        "none": "Aucun score pour l’instant.",
        "chart_alt": "Scores de douleur du plan, du premier au dernier",
        "trend": {"rising": "en hausse", "falling": "en baisse", "steady": "stable"},
        "summary": "{count} scores, {trend} ({first}/10 à {latest}/10)",
        "one": "un seul score pour l’instant",
        "via": {"sms": "texto", "web": "lien du courriel", "email": "courriel"},
        "notice": ("Page interne destinée au personnel de la clinique. "
                   "Elle contient des renseignements personnels sur la santé."),
    },
}


def trajectory_words(locale: str) -> dict[str, Any]:
    return WORDS.get(locale, WORDS["en-CA"])


def trajectory_page(trajectory: Trajectory, chart_png: bytes, *, locale: str, time_zone: str,
                    clinic_name: str) -> HTMLResponse:
    words = trajectory_words(locale)
    locale = locale if locale in WORDS else "en-CA"
    zone, babel_locale = ZoneInfo(time_zone), locale.replace("-", "_")

    def when(moment: datetime | None) -> str:
        return format_datetime(moment, format="medium", tzinfo=zone, locale=babel_locale) if moment else "–"

    via = words["via"]
    rows = [(point.visit, when(point.visit_at), point.round, when(point.answered_at), f"{point.score}/10",
             via.get(point.via, point.via)) for point in trajectory.points]
    trend = words["trend"]
    summary = (str(words["summary"]).format(count=len(trajectory.points), trend=trend[trajectory.trend.value],
                                            first=trajectory.first, latest=trajectory.latest)
               if trajectory.trend else str(words["one"]) if trajectory.points else str(words["none"]))
    html = _environment.get_template("trajectory.html.j2").render(
        locale=locale, words=words, patient_id=trajectory.patient_id, rows=rows, summary=summary,
        treatment=appointment_type_name(str(trajectory.appointment_type), locale).capitalize(),
        chart=base64.b64encode(chart_png).decode(), clinic_name=clinic_name)
    return HTMLResponse(html, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
