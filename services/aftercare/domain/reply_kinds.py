"""What a patient's reply can contain: the kinds the parser reports and triage reads."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReplyIntent(StrEnum):
    SCORE = "score"
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    FREE_TEXT = "free_text"  # readable words, no usable score
    UNREADABLE = "unreadable"  # empty, gibberish, or only an ambiguous number


class RedFlag(StrEnum):
    CHEST_PAIN = "chest_pain"
    SHORTNESS_OF_BREATH = "shortness_of_breath"
    FEVER = "fever"
    SPREADING_REDNESS = "spreading_redness"
    WARMTH = "warmth"
    SWELLING = "swelling"
    PUS = "pus"
    NUMBNESS = "numbness"
    WEAKNESS = "weakness"
    SEVERE_OR_WORSENING_PAIN = "severe_or_worsening_pain"


class Language(StrEnum):
    ENGLISH = "en-CA"
    FRENCH = "fr-CA"


@dataclass(frozen=True)
class ParsedReply:
    intent: ReplyIntent
    score: int | None = None
    red_flags: tuple[RedFlag, ...] = ()
    language_hint: Language | None = None
