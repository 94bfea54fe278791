"""`clinic-notify trajectory PATIENT_ID`: a patient's soreness scores over a plan, as CSV or FHIR R4.

The FHIR export is a Bundle (type collection) of one `Observation` per score: LOINC 72514-3, the pain
scale, subject `Patient/<id>`, the time of the answer, the score as an integer. Nothing else about the
patient goes out: no name, no phone, no words they wrote.
"""
from __future__ import annotations

import csv
import io
import json
import sys
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from cli.output import fail
from cli.reading import read_database
from services.aftercare.domain.trajectory import Trajectory
from services.aftercare.views import patient_trajectories

LOINC_PAIN_SEVERITY = "72514-3"
LOINC_DISPLAY = "Pain severity - 0-10 verbal numeric rating [Score] - Reported"
CSV_COLUMNS = ("visit", "round", "answered_at", "score", "via")
# The code's text, in the language of whoever reads the export; the LOINC display stays as LOINC names it.
CODE_TEXT = {"en-CA": "Soreness after the visit (0-10)", "fr-CA": "Douleur après la visite (0-10)"}
_OBSERVATION_NAMESPACE = uuid.UUID("0f5e6a4c-3b1d-4f7e-9a2b-7c8d9e0f1a2b")


class ExportFormat(StrEnum):
    csv = "csv"
    fhir = "fhir"


class Language(StrEnum):
    en = "en-CA"
    fr = "fr-CA"


def register(app: typer.Typer) -> None:
    app.command("trajectory")(export_trajectory)


def export_trajectory(
    patient_id: Annotated[str, typer.Argument(help="The patient's id in the booking system.")],
    database_url: Annotated[str, typer.Option("--database-url", envvar="AFTERCARE_DATABASE_URL", show_envvar=True,
                                              help="SQLAlchemy URL of the aftercare database.")],
    export_format: Annotated[ExportFormat, typer.Option("--format", help="csv or fhir (an R4 Bundle).")] = (
        ExportFormat.csv),
    appointment_type: Annotated[str | None, typer.Option(
        "--type", help="The plan's appointment type; needed when the patient has check-ins of several.")] = None,
    language: Annotated[Language, typer.Option("--language", help="Language of the FHIR code's text.")] = (
        Language.en),
) -> None:
    """A patient's soreness scores over their visits of one type, in order, written to standard output."""
    trajectories = read_database(database_url, lambda engine: patient_trajectories(engine, patient_id),
                                 "the aftercare database")
    chosen = [t for t in trajectories if appointment_type in (None, t.appointment_type)]
    if not chosen:
        fail(f"no check-ins on record for this patient{f' of type {appointment_type}' if appointment_type else ''}")
    if len(chosen) > 1:
        fail("the patient has check-ins of several types; choose one with --type: "
             + ", ".join(str(t.appointment_type) for t in chosen))
    [trajectory] = chosen
    if export_format is ExportFormat.csv:
        sys.stdout.write(trajectory_csv(trajectory))
    else:
        sys.stdout.write(json.dumps(trajectory_bundle(trajectory, language.value, datetime.now(UTC)), indent=2) + "\n")


def trajectory_csv(trajectory: Trajectory) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for point in trajectory.points:
        writer.writerow((point.visit, point.round, point.answered_at.isoformat(), point.score, point.via))
    return out.getvalue()


def trajectory_bundle(trajectory: Trajectory, locale: str, now: datetime) -> dict[str, Any]:
    """A FHIR R4 Bundle of type collection: one final survey Observation per score."""
    entries = []
    for point in trajectory.points:
        # Stable ids: exporting twice names each score the same way.
        identifier = uuid.uuid5(_OBSERVATION_NAMESPACE, f"{point.appointment_id}:{point.round}")
        entries.append({"fullUrl": f"urn:uuid:{identifier}", "resource": {
            "resourceType": "Observation",
            "id": str(identifier),
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "survey", "display": "Survey"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": LOINC_PAIN_SEVERITY,
                                 "display": LOINC_DISPLAY}],
                     "text": CODE_TEXT.get(locale, CODE_TEXT["en-CA"])},
            "subject": {"reference": f"Patient/{trajectory.patient_id}"},
            "effectiveDateTime": point.answered_at.isoformat(),
            "valueInteger": point.score,
        }})
    return {"resourceType": "Bundle", "type": "collection", "timestamp": now.isoformat(timespec="seconds"),
            "entry": entries}
