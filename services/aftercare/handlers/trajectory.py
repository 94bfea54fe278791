"""The soreness trajectory in the clinician's emails: the chart inline, and a link to the staff page.

Runs in the transaction that records the staff messages, after the answer itself is recorded, so the
chart shows the score that caused the message. The chart is stored with the message (base64 PNG in
its context): a resend shows the same picture, and the composer needs no database.
"""
from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.aftercare.domain.trajectory import Trajectory
from services.aftercare.trajectory_chart import render_chart
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


def chart_png(trajectory: Trajectory, clinic: ClinicConfig, locale: str) -> bytes:
    triage = clinic.aftercare.triage
    return render_chart(trajectory, mild_at_or_below=triage.reassure_at_or_below,
                        escalate_at_or_above=triage.escalate_at_or_above, locale=locale,
                        time_zone=clinic.clinic.time_zone)


async def with_trajectory(connection: AsyncConnection, intents: Sequence[DeliveryIntent], *, links: PatientLinks,
                          clinic: ClinicConfig) -> tuple[DeliveryIntent, ...]:
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
    return tuple(_with_chart(intent, trajectory, links, clinic) if intent in charted else intent
                 for intent in intents)


def _with_chart(intent: DeliveryIntent, trajectory: Trajectory, links: PatientLinks,
                clinic: ClinicConfig) -> DeliveryIntent:
    extra = dict(intent.context.get("extra", {}))
    extra.update(
        trajectory_url=trajectory_url(links, trajectory.patient_id, str(trajectory.appointment_type), intent.locale),
        trajectory_scores=[point.score for point in trajectory.points],
        trajectory_trend=trajectory.trend.value if trajectory.trend else None,
    )
    if trajectory.points:
        extra.update(
            trajectory_chart=CHART_CONTENT_ID,
            inline_images=[{"content_id": CHART_CONTENT_ID, "filename": "soreness-trajectory.png",
                            "mime_type": "image/png",
                            "base64": base64.b64encode(chart_png(trajectory, clinic, intent.locale)).decode()}],
        )
    return replace(intent, context=intent.context | {"extra": extra})
