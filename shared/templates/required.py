"""Every (template, channel) the services may send; checked at start-up with verify_complete."""
from __future__ import annotations

_EMAIL_AND_SMS = (
    "confirmation",
    "series_confirmation",
    "reschedule_notice",
    "cancellation_notice",
    "pre_session_guidance",
    "reminder",
    "aftercare_advice",
    "soreness_check_in",
    "check_in_reassurance",
    "check_in_care_advice",
    "check_in_escalation_reply",
    "check_in_clarification",
    "help_reply",
    "opt_out_confirmation",
    "opt_in_confirmation",
    "staff_alert",
    "staff_review",
    "staff_escalation_page",
    "staff_screening",
    "reminder_confirmed_reply",
    "reminder_change_reply",
    "reminder_clarification",
    "staff_change_request",
)

# Sent to the on-call clinician, not to the patient: they may name the patient and the treatment.
STAFF_TEMPLATES: frozenset[str] = frozenset(
    {"staff_alert", "staff_review", "staff_escalation_page", "staff_screening", "staff_change_request"}
)

REQUIRED_TEMPLATES: frozenset[tuple[str, str]] = frozenset(
    (template, channel) for template in _EMAIL_AND_SMS for channel in ("email", "sms")
)
