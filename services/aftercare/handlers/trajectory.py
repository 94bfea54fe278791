"""The soreness trajectory in the clinician's emails: the chart inline, and a link to the staff page.

Runs in the transaction that records the staff messages, after the answer itself is recorded, so the
chart shows the score that caused the message. The message keeps the plan's scores and when each was
given (a few dozen bytes a score, `trajectory_points` in its context), not a picture: the chart is drawn
from them when the email goes out (`trajectory_email.py`), off the event loop, and a resend draws the
same picture.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.aftercare.domain.trajectory import Trajectory
from services.aftercare.trajectory_chart import Scored, render_chart
from services.aftercare.views import patient_trajectory, plan_of
from shared.clinic_config import ClinicConfig
from shared.ledger.model import DeliveryIntent
from shared.links import InvalidLink, PatientLinks

LINK_PURPOSE = "staff-trajectory"
LINK_VALIDITY = timedelta(days=14)  # a plan of weekly visits: the link in last week's alert still opens
CHART_CONTENT_ID = "soreness-trajectory@clinic-notify"
CHARTED_TEMPLATES = frozenset({"staff_alert", "staff_review"})


def trajectory_url(links: PatientLinks, patient_id: str, appointment_type: str, locale: str) -> str:
    """The staff page of the patient's plan; the patient id travels encrypted, never in clear."""
    token = links.encrypt_token(LINK_PURPOSE, {"patient": patient_id, "type": appointment_type, "locale": locale})
    return f"{links.base_url.rstrip('/')}/staff/trajectory/{token}"


def trajectory_claims(links: PatientLinks, token: str) -> dict[str, Any] | None:
    """What a staff page link names, or None when it is forged, altered or expired."""
    try:
        claims = links.decrypt_token(LINK_PURPOSE, token, LINK_VALIDITY)
    except InvalidLink:
        return None
    return claims if isinstance(claims.get("patient"), str) and isinstance(claims.get("type"), str) else None


def chart_png(points: Sequence[Scored], clinic: ClinicConfig, locale: str) -> bytes:
    """The chart in the clinic's bands and time zone. CPU-bound: from the event loop, through `asyncio.to_thread`."""
    triage = clinic.aftercare.triage
    return render_chart(points, mild_at_or_below=triage.reassure_at_or_below,
                        escalate_at_or_above=triage.escalate_at_or_above, locale=locale,
                        time_zone=clinic.clinic.time_zone)


async def with_trajectory(connection: AsyncConnection, intents: Sequence[DeliveryIntent], *,
                          links: PatientLinks) -> tuple[DeliveryIntent, ...]:
    """The staff emails among `intents` with the patient's chart and page link; other messages unchanged.

    Nothing is added for a text nobody could match to a visit, or for visits recorded before the patient
    was kept with their check-ins."""
    charted = [intent for intent in intents if intent.channel == "email" and intent.template in CHARTED_TEMPLATES]
    if not charted:
        return tuple(intents)
    plan = await plan_of(connection, charted[0].appointment_id)
    if plan is None:
        return tuple(intents)
    patient_id, appointment_type = plan
    trajectory = await patient_trajectory(connection, patient_id, appointment_type)
    return tuple(_with_chart(intent, trajectory, links) if intent in charted else intent for intent in intents)


def _with_chart(intent: DeliveryIntent, trajectory: Trajectory, links: PatientLinks) -> DeliveryIntent:
    extra = dict(intent.context.get("extra", {}))
    extra.update(
        trajectory_url=trajectory_url(links, trajectory.patient_id, str(trajectory.appointment_type), intent.locale),
        trajectory_scores=[point.score for point in trajectory.points],
        trajectory_trend=trajectory.trend.value if trajectory.trend else None,
    )
    if trajectory.points:
        extra.update(
            trajectory_chart=CHART_CONTENT_ID,  # the HTML shows "cid:" it; the picture is drawn as the email goes
            trajectory_points=[{"at": point.answered_at.isoformat(), "score": point.score}
                               for point in trajectory.points],
        )
    return replace(intent, context=intent.context | {"extra": extra})
