"""The soreness score in a reply: digits, words in English and French, ranges, negations."""
from __future__ import annotations

import re
from functools import lru_cache

from services.aftercare.domain.reply_text import EDGE_SYMBOLS

_NUMBER_WORDS = {
    "zero": "0", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "deux": "2", "trois": "3", "quatre": "4",
    "cinq": "5", "sept": "7", "huit": "8", "neuf": "9", "dix": "10",
}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b")
# "one"/"un"/"une" are also pronouns and articles ("une douleur"), so they only count as a score
# when explicit ("un sur dix") or when they are the whole reply.
_ONE_OUT_OF_TEN = re.compile(r"\b(?:one|un|une)(?=\s*(?:/|out of|sur|on)\s*(?:10|ten|dix)\b)")
_ONE_ALONE = re.compile(r"^(?:(?:about|maybe|around|like|a|environ|peut-etre|genre)\s+)*(?:one|un|une)$")
_LETTER_O_TYPO = re.compile(r"\b1o\b")
_DIX_SEPT_TO_NEUF = re.compile(r"\bdix-(sept|huit|neuf)\b")

_PERCENT_AFTER = r"\s*(?:%|percent|pour ?cent)"
_NOT_A_SCORE_AFTER = (
    r"[.:]\d|\s*(?:am\b|pm\b|a\.m|p\.m|h\b|h\d|o'?clock|heures?\b|hrs?\b|hours?\b|days?\b|jours?\b"
    r"|weeks?\b|semaines?\b|mins?\b|minutes?\b|times\b|fois\b|sessions?\b|seances?\b|months?\b"
    r"|mois\b|years?\b|yrs?\b|ans\b|mg\b|ml\b|km\b|kg\b|lbs?\b|pills?\b|advils?\b|tylenols?\b"
    r"|needles?\b|aiguilles?\b|spots?\b|x\b|st\b|nd\b|rd\b|th\b|e\b|er\b|eme\b|"
    r"jan|feb|fev|mar|apr|avr|may\b|mai\b|jun|juin|jul|juil|aug|aout|sep|oct|nov|dec)"
)
# What follows a number is read in the same match: a unit or a date (not a score), or a percentage
# (not a 0-10 score, but a sign the patient tried). What it takes up holds no digit a number could
# start with (digits after ".", ":" or "h" start none), so no number is skipped.
_NUMBER = re.compile(
    r"(?<![\w.,/])(?<!\d:)(?P<value>\d+(?:[.,]\d(?!\d))?)"
    r"(?:\s*(?:/|out of|outta|sur|on)\s*(?P<scale>\d+))?"
    rf"(?:(?P<not_a_score>{_NOT_A_SCORE_AFTER})|(?P<percent>{_PERCENT_AFTER}))?"
)
# The words before a number are found in one pass over the reply, each pattern ending where a number
# starts (`(?=\d)`); the handler looks the number's start up. Reading the text before each number
# again would make a long reply of numbers cost the square of its length.
_NOT_A_SCORE_BEFORE = re.compile(
    r"\b(?:since|until|till|depuis|day|jour|the|les|des|mes|ces|these|those|last|past|next|first"
    r"|room|number|numero|jan\w*|feb\w*|fev\w*|mar\w*|apr\w*|avr\w*|may|mai|jun\w*|juin|jul\w*"
    r"|aug\w*|aout|sep\w*|oct\w*|nov\w*|dec\w*)\s*(?=\d)|#\s*(?=\d)"
)
_NEGATED_BEFORE = re.compile(
    r"\b(?:not|isn'?t|wasn'?t|no longer|no more|never|pas|plus|jamais)\s+"
    r"(?:(?:even|really|quite|at|a|an|un|une|meme|rendue?)\s+)*(?=\d)"
)
_EARLIER_BEFORE = re.compile(
    r"\b(?:was|were|yesterday|hier|etait|earlier|used to be|last night)\s+"
    r"(?:(?:a|an|un|une|at|a|like|about|around|soir)\s+)*(?=\d)"
)
# `(?<!\d)`: a run of digits is tried once from its start, not again from each of its digits.
_TRANSITION = re.compile(r"(?:\bfrom|\bde)\s+(\d+)\s*(?:to|a)\s*\d|(?<!\d)(\d+)\s*(?:->|=>|>)\s*\d")
_ABOVE_THE_SCALE = 1000
_NO_PAIN = re.compile(
    r"\b(?:no|zero|0)\s+(?:pain|soreness)\b(?!\s+(?:relief|killers?|meds?|medications?|pills?|in|on)\b)"
    r"|\bpain[- ]free\b|\b(?:aucune|pas\s+de)\s+douleur\b(?!\s+(?:a|au|dans)\b)"
)


def score_in(normalized: str) -> tuple[int | None, bool]:
    """The score and whether a number was seen that could not be trusted as one."""
    text = _LETTER_O_TYPO.sub("10", normalized)
    text = _ONE_OUT_OF_TEN.sub("1", text)
    text = _DIX_SEPT_TO_NEUF.sub(lambda m: "1" + _NUMBER_WORDS[m.group(1)], text)
    if _ONE_ALONE.match(EDGE_SYMBOLS.sub("", text)):
        return 1, False
    text = _NUMBER_WORD.sub(lambda m: _NUMBER_WORDS[m.group(1)], text)
    earlier = {m.start(g) for m in _TRANSITION.finditer(text) for g in (1, 2) if m.group(g)}
    not_a_score, negated, said_earlier = (
        {m.end() for m in pattern.finditer(text)} for pattern in (_NOT_A_SCORE_BEFORE, _NEGATED_BEFORE, _EARLIER_BEFORE)
    )

    current: set[int] = set()
    past: set[int] = set()
    ambiguous = False
    for match in _NUMBER.finditer(text):
        start = match.start()
        number, scale, unit, percent = match.group("value", "scale", "not_a_score", "percent")
        if unit is not None or start in not_a_score:
            continue
        if percent is not None or start in negated:
            ambiguous = True
            continue
        value = _score_value(number, scale)
        if value is None:
            ambiguous = True
        elif start in earlier or start in said_earlier:
            past.add(value)
        else:
            current.add(value)
    # Two numbers ("3-4", "3 or 4", "6 or 7ish") are a range: the higher one is the safer reading.
    candidates = current or past
    if candidates:
        return max(candidates), False
    if not ambiguous and _NO_PAIN.search(normalized):
        return 0, False
    return None, ambiguous


@lru_cache(maxsize=64)  # a long reply repeats the same few numbers
def _score_value(value: str, scale: str | None) -> int | None:
    whole, _, tenths = value.replace(",", ".").partition(".")
    # Rounded up ("6.5" is 7); a long run of digits is no score: read it as above the scale.
    number = int(whole) + (tenths not in ("", "0")) if len(whole.lstrip("0")) <= 3 else _ABOVE_THE_SCALE
    if scale is not None:
        # "12/10" is a patient saying "worse than the scale allows", not a typo.
        return min(number, 10) if scale == "10" else None
    return number if number <= 10 else None
