"""The soreness chart of a staff email, drawn as the email goes out.

A staff alert or review records the plan's scores with the message (`handlers/trajectory.py`), not a
picture. `TrajectoryComposer` composes the email as every other one (the HTML refers to the chart by
"cid:") and hands it on as an `EmailAwaitingChart`, quickly: the dispatcher composes on the event loop.
`ChartDrawingSender`, in front of the SMTP channel, draws the PNG from those scores in a worker thread
(matplotlib takes a good fraction of a second of CPU) and sends the email with the chart inline. The
same scores draw the same bytes: an email resent after a crash shows the same picture.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from services.aftercare.handlers.trajectory import CHART_CONTENT_ID, CHARTED_TEMPLATES, chart_png
from shared.channels.messages import Attachment, EmailMessage, EmailSender
from shared.clinic_config import ClinicConfig
from shared.delivery.compose import MessageComposer
from shared.ledger.model import Delivery

CHART_FILENAME = "soreness-trajectory.png"


@dataclass(frozen=True)
class ChartPoint:
    answered_at: datetime
    score: int


@dataclass(frozen=True)
class ChartToDraw:
    points: tuple[ChartPoint, ...]
    locale: str


@dataclass(frozen=True)
class EmailAwaitingChart(EmailMessage):
    """An email whose HTML shows a chart not drawn yet; `with_chart` draws it."""

    chart: ChartToDraw | None = None


def chart_to_draw(context: dict[str, Any], locale: str) -> ChartToDraw | None:
    """The chart a staff email's stored context asks for, if any."""
    points = context.get("extra", {}).get("trajectory_points") or []
    if not points:
        return None
    return ChartToDraw(tuple(ChartPoint(datetime.fromisoformat(str(point["at"])), int(point["score"]))
                             for point in points), locale)


class TrajectoryComposer(MessageComposer):
    def email(self, delivery: Delivery, now: datetime) -> EmailMessage:
        message = super().email(delivery, now)
        chart = chart_to_draw(delivery.context, delivery.locale) if delivery.template in CHARTED_TEMPLATES else None
        if chart is None or f"cid:{CHART_CONTENT_ID}" not in message.html:
            return message
        return EmailAwaitingChart(**{field.name: getattr(message, field.name) for field in fields(EmailMessage)},
                                  chart=chart)


def with_chart(message: EmailMessage, clinic: ClinicConfig) -> EmailMessage:
    """The email as sent: its chart drawn and attached inline. CPU-bound: run it in a worker thread."""
    if not isinstance(message, EmailAwaitingChart) or message.chart is None:
        return message
    png = chart_png(message.chart.points, clinic, message.chart.locale)
    picture = Attachment(CHART_FILENAME, png, "image/png", content_id=CHART_CONTENT_ID)
    plain = {field.name: getattr(message, field.name) for field in fields(EmailMessage)}
    return EmailMessage(**plain | {"attachments": (*message.attachments, picture)})


class ChartDrawingSender:
    """An `EmailSender` in front of another: draws the chart of an email awaiting one, off the event loop."""

    def __init__(self, channel: EmailSender, clinic: ClinicConfig) -> None:
        self.channel = channel
        self.clinic = clinic

    async def send(self, message: EmailMessage) -> str:
        if isinstance(message, EmailAwaitingChart):
            message = await asyncio.to_thread(with_chart, message, self.clinic)
        return await self.channel.send(message)
