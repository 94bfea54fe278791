"""A patient's soreness over a plan: the order of the points, the trend, and the chart the clinician sees."""
from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Literal
from xml.etree import ElementTree

import pytest
from matplotlib import image as mpimage
from PIL import Image

from services.aftercare.domain.trajectory import Band, CheckInOnRecord, Trend, band, trajectory_of
from services.aftercare.trajectory_chart import DPI, POINTS_ID, SIZE_INCHES, render_chart

FIRST_VISIT = datetime(2026, 6, 2, 20, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def answered(visit: int, round_number: int, score: int | None, via: str = "sms",
             appointment_id: str | None = None) -> CheckInOnRecord:
    visit_at = FIRST_VISIT + timedelta(weeks=visit - 1)
    return CheckInOnRecord(appointment_id or f"apt-{visit}", visit_at, round_number, score,
                           visit_at + timedelta(days=round_number) if score is not None else None,
                           via if score is not None else None)


def plan(*scores: int) -> list[CheckInOnRecord]:
    return [answered(visit, 1, score) for visit, score in enumerate(scores, start=1)]


def test_points_follow_the_plan_by_visit_then_round_whatever_order_they_are_stored_in() -> None:
    records = [answered(2, 2, 3), answered(1, 1, 6), answered(2, 1, 4, via="web"), answered(1, 2, 5)]
    trajectory = trajectory_of("pt-1", "dry_needling", records)
    assert [(p.visit, p.round, p.score, p.via) for p in trajectory.points] == [
        (1, 1, 6, "sms"), (1, 2, 5, "sms"), (2, 1, 4, "web"), (2, 2, 3, "sms")]


def test_an_unanswered_visit_is_no_point_but_still_counts_as_a_visit_of_the_plan() -> None:
    trajectory = trajectory_of("pt-1", "dry_needling", [answered(1, 1, 6), answered(2, 1, None), answered(3, 1, 5)])
    assert [(p.visit, p.score) for p in trajectory.points] == [(1, 6), (3, 5)]
    assert trajectory.visits == 3


@pytest.mark.parametrize(("scores", "trend"), [
    ((6, 4, 8), Trend.RISING),
    ((8, 6, 3), Trend.FALLING),
    ((5, 2, 6), Trend.STEADY),  # one point up from the first: within what a patient would notice
    ((4, 4), Trend.STEADY),
])
def test_the_trend_compares_the_latest_score_with_the_first(scores: tuple[int, ...], trend: Trend) -> None:
    trajectory = trajectory_of("pt-1", "dry_needling", plan(*scores))
    assert trajectory.trend is trend
    assert (trajectory.first, trajectory.latest) == (scores[0], scores[-1])


def test_one_score_has_no_trend_and_no_score_has_nothing_to_compare() -> None:
    assert trajectory_of("pt-1", "dry_needling", plan(5)).trend is None
    empty = trajectory_of("pt-1", "dry_needling", [answered(1, 1, None)])
    assert (empty.points, empty.trend, empty.first, empty.latest) == ((), None, None, None)


def test_bands_follow_the_clinic_thresholds() -> None:
    assert [band(score, 3, 7) for score in (0, 3, 4, 6, 7, 10)] == [
        Band.MILD, Band.MILD, Band.MODERATE, Band.MODERATE, Band.ESCALATION, Band.ESCALATION]


# --- the chart ---

def chart(scores: tuple[int, ...], locale: str = "en-CA", image_format: Literal["png", "svg"] = "png") -> bytes:
    return render_chart(trajectory_of("pt-1", "dry_needling", plan(*scores)).points, mild_at_or_below=3,
                        escalate_at_or_above=7, locale=locale, time_zone="America/Toronto",
                        image_format=image_format)


def test_the_chart_is_a_png_of_a_readable_size() -> None:
    png = chart((6, 4, 8))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (int(SIZE_INCHES[0] * DPI), int(SIZE_INCHES[1] * DPI))
    pixels = mpimage.imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (360, 720) and pixels.std() > 0.05  # drawn on, not a blank canvas


def svg_points(svg: bytes) -> list[tuple[float, float]]:
    root = ElementTree.fromstring(svg)
    [line] = [g for g in root.iter(f"{SVG}g") if g.get("id") == POINTS_ID]
    return [(float(use.get("x", "nan")), float(use.get("y", "nan"))) for use in line.iter(f"{SVG}use")]


def test_the_chart_has_one_marker_per_score_higher_for_a_worse_score() -> None:
    points = svg_points(chart((6, 4, 8), image_format="svg"))
    assert len(points) == 3
    xs, ys = zip(*points, strict=True)
    assert list(xs) == sorted(xs)  # left to right in time
    assert ys[2] < ys[0] < ys[1]  # SVG's y grows downwards: 8 is drawn highest, 4 lowest


@pytest.mark.parametrize(("locale", "words"), [
    ("en-CA", ["Soreness (0–10)", "Mild (0–3)", "Escalation (7–10)"]),
    ("fr-CA", ["Douleur (0–10)", "Légère (0–3)", "Signalement (7–10)"]),
])
def test_the_chart_speaks_the_staff_language_and_shows_the_clinic_thresholds(locale: str, words: list[str]) -> None:
    texts = {"".join(t.itertext()) for t in ElementTree.fromstring(chart((6, 4, 8), locale, "svg")).iter(f"{SVG}text")}
    assert set(words) <= texts


def test_a_chart_without_scores_says_so_instead_of_drawing_nothing() -> None:
    svg = chart((), image_format="svg")
    texts = {"".join(t.itertext()) for t in ElementTree.fromstring(svg).iter(f"{SVG}text")}
    assert "No score yet" in texts
