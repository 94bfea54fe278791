"""The clinic's own configuration file: who it is, its locations, quiet hours and message schedules.

Loaded and validated once at start-up; an invalid file stops the service with an error naming the field.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, EmailStr, Field, HttpUrl, ValidationError, model_validator

from shared.events.appointment import AppointmentType
from shared.events.patient import E164Phone, Locale, TimeZoneName
from shared.scheduling.steps import Offset, QuietHours, Schedule


class OnCallContact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    email: EmailStr
    phone: E164Phone


class Location(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    address: str
    phone: E164Phone


class ClinicIdentity(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    phone: E164Phone
    email: EmailStr
    # Where patients' requests to change an appointment go (the front desk); unset: `email`.
    front_desk_email: EmailStr | None = None
    website: HttpUrl
    mailing_address: str
    time_zone: TimeZoneName = "America/Toronto"


class TriageThresholds(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reassure_at_or_below: int = Field(default=3, ge=0, le=10)
    escalate_at_or_above: int = Field(default=7, ge=0, le=10)

    @model_validator(mode="after")
    def _ordered(self) -> TriageThresholds:
        if self.reassure_at_or_below >= self.escalate_at_or_above:
            raise ValueError("reassure_at_or_below must be lower than escalate_at_or_above")
        return self


class AftercareConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    check_ins: dict[AppointmentType | str, Schedule] = Field(default_factory=dict)
    triage: TriageThresholds = TriageThresholds()
    # How long after the last check-in a patient who never answered is reported to staff.
    reply_window: Offset = timedelta(hours=24)
    on_call: OnCallContact
    # The escalation chain: whoever has not acknowledged within `acknowledge_within` is followed by the next.
    backup: OnCallContact
    lead: OnCallContact
    acknowledge_within: Offset = timedelta(minutes=15)

    @model_validator(mode="after")
    def _distinct_chain(self) -> AftercareConfig:
        if self.acknowledge_within <= timedelta(0):
            raise ValueError("acknowledge_within must be a positive duration")
        chain = self.escalation_chain()
        for field in ("phone", "email"):
            values = [str(getattr(contact, field)) for _, contact in chain]
            if len(set(values)) != len(values):
                raise ValueError(f"on_call, backup and lead need a {field} each of their own")
        return self

    def escalation_chain(self) -> tuple[tuple[str, OnCallContact], ...]:
        """Who is paged, in order, until someone acknowledges."""
        return (("on_call", self.on_call), ("backup", self.backup), ("lead", self.lead))

    def staff_role_of(self, phone: str) -> str | None:
        """The role of the chain whose phone this is: texts from it are staff answers, not patient replies."""
        return next((role for role, contact in self.escalation_chain() if contact.phone == phone), None)


class ScreeningQuestion(BaseModel):
    """A question asked before a visit, in each of the clinic's languages."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: dict[str, str]  # the question, by locale: every language the clinic writes in
    kind: Literal["yes_no", "text"] = "yes_no"
    # Whether the answer goes to the practitioner before the visit: a "yes", or any text for a text question.
    matters: bool = True

    @model_validator(mode="after")
    def _every_language(self) -> ScreeningQuestion:
        languages = set(get_args(Locale))
        missing, unknown = languages - set(self.text), set(self.text) - languages
        if missing or unknown:
            raise ValueError(f"text needs exactly the languages {sorted(languages)}; missing {sorted(missing)}, "
                             f"unknown {sorted(unknown)}")
        if not all(wording.strip() for wording in self.text.values()):
            raise ValueError("text: a question cannot be empty")
        return self


class ScreeningConfig(BaseModel):
    """The questions asked before a visit, which appointment types ask which, and who reads the answers.

    Answers that matter go to the practitioner's address in `practitioners` (keyed by the practitioner's
    name as the booking system writes it); a practitioner not listed there is reached at the clinic's email.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    questions: dict[str, ScreeningQuestion] = Field(default_factory=dict)
    ask: dict[AppointmentType | str, list[str]] = Field(default_factory=dict)
    practitioners: dict[str, EmailStr] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_questions(self) -> ScreeningConfig:
        for question_id in self.questions:
            if not question_id.replace("_", "").isalnum() or not question_id.isascii() or len(question_id) > 40:
                raise ValueError(f"questions: {question_id!r} is not an id (letters, digits, _; at most 40)")
        for appointment_type, ids in self.ask.items():
            unknown = sorted(set(ids) - set(self.questions))
            if unknown:
                raise ValueError(f"ask.{appointment_type}: unknown question id(s) {unknown}; "
                                 f"use one of {sorted(self.questions)}")
            if len(set(ids)) != len(ids):
                raise ValueError(f"ask.{appointment_type}: a question is listed twice")
        return self

    def questions_for(self, appointment_type: str) -> tuple[tuple[str, ScreeningQuestion], ...]:
        """The questions this appointment type asks, in the configured order; none for an unlisted type."""
        by_name = {str(key): value for key, value in self.ask.items()}
        ids = by_name.get(appointment_type, by_name.get("default", []))
        return tuple((question_id, self.questions[question_id]) for question_id in ids)


class ClinicConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    clinic: ClinicIdentity
    locations: dict[str, Location]
    quiet_hours: QuietHours = QuietHours()
    hold_email_in_quiet_hours: bool = False
    pre_session: dict[AppointmentType | str, Schedule] = Field(default_factory=dict)
    aftercare: AftercareConfig
    screening: ScreeningConfig = ScreeningConfig()

    @model_validator(mode="after")
    def _known_keys(self) -> ClinicConfig:
        if self.aftercare.staff_role_of(self.clinic.phone) is not None:
            raise ValueError("aftercare: a staff phone cannot be the clinic's own number")
        allowed = {member.value for member in AppointmentType} | {"default"}
        sections = (("pre_session", self.pre_session), ("aftercare.check_ins", self.aftercare.check_ins))
        for section, schedules in sections:
            unknown = set(map(str, schedules)) - allowed
            if unknown:
                raise ValueError(
                    f"{section}: unknown appointment type(s) {sorted(unknown)}; use one of {sorted(allowed)}"
                )
        unknown_types = set(map(str, self.screening.ask)) - allowed
        if unknown_types:
            raise ValueError(f"screening.ask: unknown appointment type(s) {sorted(unknown_types)}")
        return self

    def pre_session_schedule(self, appointment_type: str) -> Schedule | None:
        return self._with_email_holding(_lookup(self.pre_session, appointment_type))

    def check_in_schedule(self, appointment_type: str) -> Schedule | None:
        return self._with_email_holding(_lookup(self.aftercare.check_ins, appointment_type))

    def _with_email_holding(self, schedule: Schedule | None) -> Schedule | None:
        """Email steps without a choice of their own follow the clinic's `hold_email_in_quiet_hours`."""
        if schedule is None or not self.hold_email_in_quiet_hours:
            return schedule
        steps = [
            step.model_copy(update={"hold_in_quiet_hours": True})
            if step.channel == "email" and step.hold_in_quiet_hours is None
            else step
            for step in schedule.steps
        ]
        return schedule.model_copy(update={"steps": steps})

    def scheduled_templates(self) -> set[tuple[str, str]]:
        """Every (template, channel) a schedule of this clinic sends."""
        schedules = [*self.pre_session.values(), *self.aftercare.check_ins.values()]
        return {(step.template, step.channel) for schedule in schedules for step in schedule.steps}

    def location(self, location_id: str) -> Location | None:
        return self.locations.get(location_id)

    def screening_recipient(self, practitioner: str) -> str:
        """Where a practitioner's screening answers go: their own address, else the clinic's."""
        return str(self.screening.practitioners.get(practitioner, self.clinic.email))


def _lookup(schedules: dict[AppointmentType | str, Schedule], appointment_type: str) -> Schedule | None:
    by_name = {str(key): value for key, value in schedules.items()}
    return by_name.get(appointment_type, by_name.get("default"))


class ClinicConfigError(ValueError):
    pass


def load_clinic_config(path: Path) -> ClinicConfig:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClinicConfigError(f"clinic configuration file not found: {path}") from None
    except yaml.YAMLError as error:
        raise ClinicConfigError(f"{path}: not valid YAML: {error}") from None
    try:
        return ClinicConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors(include_input=False)
        )
        raise ClinicConfigError(f"{path}: {problems}") from None
