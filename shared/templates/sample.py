"""A realistic render context, for previews and tests; clinic and location come from deploy/clinic.yaml."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

CLINIC_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "clinic.yaml"
SAMPLE_BASE_URL = "http://127.0.0.1:8040"
TORONTO = ZoneInfo("America/Toronto")

_CLINIC_KEYS = ("name", "phone", "email", "website", "mailing_address")
_LOCATION_KEYS = ("name", "address", "phone")
_CHECK_IN_TEMPLATES = frozenset(
    {
        "soreness_check_in",
        "check_in_reassurance",
        "check_in_care_advice",
        "check_in_escalation_reply",
        "check_in_clarification",
    }
)
# A score that leads to each check-in reply (see aftercare.triage in deploy/clinic.yaml).
_REPLY_SCORES: dict[str, int | None] = {
    "check_in_reassurance": 2,
    "check_in_care_advice": 5,
    "check_in_escalation_reply": 8,
    "check_in_clarification": None,
}


def _next_visit() -> datetime:
    """10:00 in Toronto, a week from today: always in the future, always a clinic hour."""
    day = datetime.now(TORONTO).date() + timedelta(days=7)
    return datetime.combine(day, time(10, 0), tzinfo=TORONTO)


def _extra(template: str, appointment_type: str) -> dict[str, Any]:
    if template in _REPLY_SCORES:
        return {"score": _REPLY_SCORES[template]}
    staff: dict[str, Any] = {
        "patient_name": "Alex Tremblay",
        "patient_phone": "+14165550123",
        "appointment_type": appointment_type,
        "check_in_step": "check_in_24h_sms",
    }
    if template in ("staff_alert", "staff_escalation_page"):
        return staff | {
            "reply_text": "8, it hurts to take a deep breath",
            "score": 8,
            "previous_score": 4,
            "reasons": ["red_flag:shortness_of_breath", "score_at_or_above:7"],
            "escalation_reference": "4821",
            "acknowledge_url": "https://care.example/escalation/sample-token",
            "escalation_raised_at": "2026-06-10T14:05:00+00:00",
            "not_acknowledged_by": ["On-call physiotherapist"],
        }
    if template == "staff_screening":
        return {"submission": 2, "replaces_earlier": True, "flagged": [
            {"id": "blood_thinners", "answer": "yes", "text": {
                "en-CA": "Do you take blood thinners, or do you have a bleeding disorder?",
                "fr-CA": "Prenez-vous des anticoagulants, ou avez-vous un trouble de la coagulation?"}},
            {"id": "anything_else", "answer": "I fainted once at a blood test", "text": {
                "en-CA": "Anything else your practitioner should know?",
                "fr-CA": "Autre chose que votre praticien(ne) devrait savoir?"}},
        ]}
    if template == "staff_review":
        return staff | {
            "reply_text": "not sure, kind of sore",
            "score": None,
            "previous_score": None,
            "reasons": ["no_score:unreadable", "unreadable_replies:2"],
        }
    return {}


def sample_context(
    appointment_type: str = "dry_needling",
    locale: str = "en-CA",
    template: str = "confirmation",
    starts_at: datetime | None = None,
) -> dict[str, Any]:
    """Everything a template may use, shaped as documented in context.md (without `locale`)."""
    config = yaml.safe_load(CLINIC_CONFIG.read_text(encoding="utf-8"))
    start = starts_at or _next_visit()
    duration = 30 if appointment_type == "dry_needling" else 45
    token = f"sample-{template}"
    return {
        "patient": {"first_name": "Alex", "time_zone": "America/Toronto"},
        "appointment": {
            "id": "appt-sample-0001",
            "type": appointment_type,
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(minutes=duration)).isoformat(),
            "duration_minutes": duration,
            "practitioner": "Jordan Lee, PT",
            "location_id": "downtown",
            "sequence": 2 if template in ("reschedule_notice", "cancellation_notice") else 1,
        },
        "previous_starts_at": (
            (start - timedelta(days=2)).isoformat() if template == "reschedule_notice" else None
        ),
        "cancelled_by": "patient" if template == "cancellation_notice" else None,
        "clinic": {key: str(config["clinic"][key]) for key in _CLINIC_KEYS},
        "location": {key: str(config["locations"]["downtown"][key]) for key in _LOCATION_KEYS},
        "links": {
            "unsubscribe": f"{SAMPLE_BASE_URL}/unsubscribe/{token}",
            "check_in": (
                f"{SAMPLE_BASE_URL}/check-in/{token}" if template in _CHECK_IN_TEMPLATES else None
            ),
            "scores": (
                [
                    {"score": score, "url": f"{SAMPLE_BASE_URL}/check-in/{token}/score/{score}"}
                    for score in range(11)
                ]
                if template == "soreness_check_in"
                else []
            ),
            "screening": (
                f"{SAMPLE_BASE_URL}/screening/{token}"
                if template == "pre_session_guidance" and appointment_type in ("dry_needling", "medical_acupuncture")
                else None
            ),
        },
        "extra": _extra(template, appointment_type),
    } | ({"series": _series(start, duration)} if template == "series_confirmation" else {})


def _series(start: datetime, duration: int) -> dict[str, Any]:
    """Six weekly sessions from `start`, the plan a series_confirmation lists."""
    sessions = [
        {"appointment_id": f"plan-sample.{n + 1}", "session_number": n + 1, "sequence": 1,
         "starts_at": (start + timedelta(weeks=n)).isoformat(),
         "ends_at": (start + timedelta(weeks=n, minutes=duration)).isoformat()}
        for n in range(6)
    ]
    return {"series_id": "plan-sample", "session_count": 6, "sessions": sessions}
