"""Pre-visit screening: reading the patient's answers and deciding what the practitioner hears. Pure.

- The questions are the clinic's (`screening` in the clinic config), per appointment type. A yes/no
  question takes "yes", "no" or no answer; a text question at most `MAX_TEXT_CHARS` characters.
- An answer *matters* when its question says so and it is a "yes" (for a text question: any text).
  The practitioner is emailed the answers that matter, before the visit; nothing is sent when nothing
  matters. The patient is never told not to come: the form only informs the practitioner.
- The patient may send the form again until the visit: the new answers replace the old ones. The
  practitioner hears again only when what matters changed, including when it all went away (so an
  earlier email is not left standing alone).
- `ScreeningSubmitted` names the flagged question ids, never the answers' text.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.clinic_config import ClinicConfig, ScreeningQuestion
from shared.events.aftercare import ScreeningSubmitted
from shared.ledger.model import DeliveryIntent
from shared.screening_links import ScreeningClaims

MAX_FORM_BYTES = 16 * 1024
MAX_TEXT_CHARS = 500
YES, NO = "yes", "no"
STAFF_TEMPLATE = "staff_screening"
STAFF_LOCALE = "en-CA"

Questions = tuple[tuple[str, ScreeningQuestion], ...]


@dataclass(frozen=True)
class FormReading:
    answers: dict[str, str]  # question id → "yes", "no" or the text; unanswered questions are absent
    too_long: tuple[str, ...] = ()  # text questions over MAX_TEXT_CHARS: nothing is recorded
    invalid: tuple[str, ...] = ()  # yes/no questions given another value (not from our form)

    @property
    def acceptable(self) -> bool:
        return not self.too_long and not self.invalid


def read_form(fields: Mapping[str, str], questions: Questions) -> FormReading:
    """The answers to the asked questions; other fields are ignored."""
    answers: dict[str, str] = {}
    too_long: list[str] = []
    invalid: list[str] = []
    for question_id, question in questions:
        # Browsers send a line break as two characters, where the textarea's maxlength counted one.
        value = fields.get(question_id, "").replace("\r\n", "\n").strip()
        if not value:
            continue
        if question.kind == "text":
            if len(value) > MAX_TEXT_CHARS:
                too_long.append(question_id)
            answers[question_id] = value
        elif value in (YES, NO):
            answers[question_id] = value
        else:
            invalid.append(question_id)
    return FormReading(answers, tuple(too_long), tuple(invalid))


def flagged_answers(answers: Mapping[str, str], questions: Questions) -> dict[str, str]:
    """The answers that matter to the practitioner, in the questions' order."""
    return {
        question_id: answers[question_id]
        for question_id, question in questions
        if question.matters and question_id in answers
        and (answers[question_id] == YES if question.kind == "yes_no" else bool(answers[question_id]))
    }


@dataclass(frozen=True)
class EarlierSubmission:
    submissions: int
    answers: dict[str, str]
    flagged: tuple[str, ...]

    def flagged_answers(self) -> dict[str, str]:
        return {question_id: self.answers[question_id] for question_id in self.flagged if question_id in self.answers}


@dataclass(frozen=True)
class ScreeningDecision:
    submission: int
    answers: dict[str, str]
    flagged: tuple[str, ...]
    staff_messages: tuple[DeliveryIntent, ...]
    event: ScreeningSubmitted

    @property
    def replaces_earlier(self) -> bool:
        return self.submission > 1


def decide_submission(claims: ScreeningClaims, answers: Mapping[str, str], earlier: EarlierSubmission | None,
                      clinic: ClinicConfig, now: datetime) -> ScreeningDecision:
    """What a (first or repeated) submission records, tells the practitioner and publishes."""
    questions = clinic.screening.questions_for(claims.appointment_type)
    asked = dict(questions)
    kept = {question_id: value for question_id, value in answers.items() if question_id in asked}
    flagged = flagged_answers(kept, questions)
    told_before = earlier.flagged_answers() if earlier else {}
    submission = earlier.submissions + 1 if earlier else 1
    staff: tuple[DeliveryIntent, ...] = ()
    if flagged != told_before:
        staff = (DeliveryIntent(
            appointment_id=claims.appointment_id, step=f"screening_{submission}", channel="email",
            appointment_version=0, template=STAFF_TEMPLATE, recipient=clinic.screening_recipient(claims.practitioner),
            locale=STAFF_LOCALE, due_at=now, expires_at=claims.starts_at,  # of no use once the visit began
            context=_staff_context(claims, flagged, asked, submission, bool(told_before), clinic),
        ),)
    event = ScreeningSubmitted(
        occurred_at=now, appointment_id=claims.appointment_id, appointment_type=claims.appointment_type,
        appointment_starts_at=claims.starts_at, submission=submission, flagged=list(flagged),
        practitioner_notified=bool(staff),
    )
    return ScreeningDecision(submission, kept, tuple(flagged), staff, event)


def _staff_context(claims: ScreeningClaims, flagged: Mapping[str, str], asked: Mapping[str, ScreeningQuestion],
                   submission: int, replaces_earlier: bool, clinic: ClinicConfig) -> dict[str, Any]:
    return {
        "patient": {"first_name": "", "time_zone": clinic.clinic.time_zone},
        "appointment": {"id": claims.appointment_id, "type": claims.appointment_type,
                        "starts_at": claims.starts_at.isoformat(), "practitioner": claims.practitioner,
                        "location_id": claims.location_id},
        "extra": {
            "submission": submission,
            "replaces_earlier": replaces_earlier,
            "flagged": [{"id": question_id, "answer": answer, "text": dict(asked[question_id].text)}
                        for question_id, answer in flagged.items()],
        },
    }
