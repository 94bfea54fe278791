"""The soreness trajectory drawn for the clinician: PNG for email, SVG for tests and pages.

x is the time each check-in was answered (in the clinic's time zone), y the 0-10 score, with the
clinic's bands shaded: mild at or below the reassurance threshold, escalation at or above its
threshold. Labels are in the staff member's language. Drawn on matplotlib's Agg canvas, without
pyplot's global state, one drawing at a time (its settings are process-wide): a drawing takes a good
fraction of a second of CPU, so callers on the event loop run it in a worker thread (`asyncio.to_thread`).
"""
from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from babel.dates import format_date
from matplotlib import dates as mdates
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

POINTS_ID = "soreness-scores"  # the SVG group holding one marker per score
SIZE_INCHES = (7.2, 3.6)
DPI = 100  # 720 by 360 pixels: readable in a mail client without scaling

WORDS: dict[str, dict[str, str]] = {
    "en-CA": {
        "title": "Soreness after each visit",
        "y": "Soreness (0–10)",
        "x": "Check-in",
        "mild": "Mild (0–{mild})",
        "escalation": "Escalation ({escalate}–10)",
        "scores": "Scores",
        "none": "No score yet",
    },
    "fr-CA": {
        "title": "Douleur après chaque visite",
        "y": "Douleur (0–10)",
        "x": "Suivi",
        "mild": "Légère (0–{mild})",
        "escalation": "Signalement ({escalate}–10)",
        "scores": "Scores",
        "none": "Aucun score pour l’instant",
    },
}


_DRAWING = threading.Lock()  # rc_context changes matplotlib's process-wide settings while it draws


class Scored(Protocol):
    """A point of the chart: a score and when it was given."""

    @property
    def answered_at(self) -> datetime: ...

    @property
    def score(self) -> int: ...


def words(locale: str) -> dict[str, str]:
    return WORDS.get(locale, WORDS["en-CA"])


def render_chart(points: Sequence[Scored], *, mild_at_or_below: int, escalate_at_or_above: int, locale: str,
                 time_zone: str, image_format: Literal["png", "svg"] = "png") -> bytes:
    """The chart as PNG or SVG bytes; one marker per score, labelled with the score. CPU-bound: off the
    event loop, call it through `asyncio.to_thread`."""
    with _DRAWING:
        return _render(points, mild_at_or_below, escalate_at_or_above, locale, time_zone, image_format)


def _render(points: Sequence[Scored], mild_at_or_below: int, escalate_at_or_above: int, locale: str,
            time_zone: str, image_format: Literal["png", "svg"]) -> bytes:
    said = words(locale)
    zone = ZoneInfo(time_zone)
    # svg.fonttype none keeps labels as text: readable by screen readers and by tests.
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "clinic-notify"}):
        figure = Figure(figsize=SIZE_INCHES, dpi=DPI)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        axes.axhspan(-0.5, mild_at_or_below + 0.5, color="#2e7d32", alpha=0.12,
                     label=said["mild"].format(mild=mild_at_or_below))
        axes.axhspan(escalate_at_or_above - 0.5, 10.5, color="#b42318", alpha=0.12,
                     label=said["escalation"].format(escalate=escalate_at_or_above))
        times = [float(mdates.date2num(point.answered_at)) for point in points]
        scores = [point.score for point in points]
        if times:
            [line] = axes.plot(times, scores, marker="o", color="#0b4f8a", linewidth=2, label=said["scores"])
            line.set_gid(POINTS_ID)
            for moment, score in zip(times, scores, strict=True):
                axes.annotate(str(score), (moment, score), textcoords="offset points", xytext=(0, 8),
                              ha="center", fontsize=9)
            axes.xaxis.set_major_locator(MaxNLocator(nbins=6))
            axes.xaxis.set_major_formatter(FuncFormatter(
                lambda value, _position: _day(mdates.num2date(value, tz=zone), locale)))
            if len(times) == 1:
                axes.set_xlim(times[0] - 1, times[0] + 1)  # a day either side of a single score
        else:
            axes.text(0.5, 0.5, said["none"], transform=axes.transAxes, ha="center", va="center")
            axes.set_xticks([])
        axes.set_ylim(-0.5, 10.5)
        axes.set_yticks(range(0, 11))
        axes.set_ylabel(said["y"])
        axes.set_xlabel(said["x"])
        axes.set_title(said["title"])
        axes.grid(axis="y", alpha=0.3)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format=image_format, dpi=DPI, metadata=_metadata(image_format))
    return buffer.getvalue()


def _day(moment: datetime, locale: str) -> str:
    return format_date(moment, format="d MMM", locale=locale.replace("-", "_"))


def _metadata(image_format: str) -> dict[str, str | None]:
    # No creation date: the same scores draw the same bytes (a resend carries the same image).
    return {"Date": None} if image_format == "svg" else {"Software": "clinic-notify"}
