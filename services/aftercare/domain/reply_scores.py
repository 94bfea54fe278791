"""The soreness score in a reply: digits, words in English and French, ranges, negations."""
from __future__ import annotations

import math
import re

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

_NUMBER = re.compile(
    r"(?<![\w.,/])(?<!\d:)(?P<value>\d+(?:[.,]\d(?!\d))?)"
    r"(?:\s*(?:/|out of|outta|sur|on)\s*(?P<scale>\d+))?"
)
_PERCENT_AFTER = re.compile(r"\s*(?:%|percent|pour ?cent)")
_NOT_A_SCORE_AFTER = re.compile(
    r"[.:]\d|\s*(?:am\b|pm\b|a\.m|p\.m|h\b|h\d|o'?clock|heures?\b|hrs?\b|hours?\b|days?\b|jours?\b"
    r"|weeks?\b|semaines?\b|mins?\b|minutes?\b|times\b|fois\b|sessions?\b|seances?\b|months?\b"
    r"|mois\b|years?\b|yrs?\b|ans\b|mg\b|ml\b|km\b|kg\b|lbs?\b|pills?\b|advils?\b|tylenols?\b"
    r"|needles?\b|aiguilles?\b|spots?\b|x\b|st\b|nd\b|rd\b|th\b|e\b|er\b|eme\b|"
    r"jan|feb|fev|mar|apr|avr|may\b|mai\b|jun|juin|jul|juil|aug|aout|sep|oct|nov|dec)"
)
_NOT_A_SCORE_BEFORE = re.compile(
    r"\b(?:since|until|till|depuis|day|jour|the|les|des|mes|ces|these|those|last|past|next|first"
    r"|room|number|numero|jan\w*|feb\w*|fev\w*|mar\w*|apr\w*|avr\w*|may|mai|jun\w*|juin|jul\w*"
    r"|aug\w*|aout|sep\w*|oct\w*|nov\w*|dec\w*)\s*$|#\s*$"
)
_NEGATED_BEFORE = re.compile(
    r"\b(?:not|isn'?t|wasn'?t|no longer|no more|never|pas|plus|jamais)\s+"
    r"(?:(?:even|really|quite|at|a|an|un|une|meme|rendue?)\s+)*$"
)
_EARLIER_BEFORE = re.compile(
    r"\b(?:was|were|yesterday|hier|etait|earlier|used to be|last night)\s+"
    r"(?:(?:a|an|un|une|at|a|like|about|around|soir)\s+)*$"
)
_TRANSITION = re.compile(r"(?:\bfrom|\bde)\s+(\d+)\s*(?:to|a)\s*\d|(\d+)\s*(?:->|=>|>)\s*\d")
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

    current: set[int] = set()
    past: set[int] = set()
    ambiguous = False
    for match in _NUMBER.finditer(text):
        before, after = text[: match.start()], text[match.end():]
        if _NOT_A_SCORE_BEFORE.search(before) or _NOT_A_SCORE_AFTER.match(after):
            continue
        if _PERCENT_AFTER.match(after) or _NEGATED_BEFORE.search(before):
            ambiguous = True
            continue
        value = _score_value(match.group("value"), match.group("scale"))
        if value is None:
            ambiguous = True
        elif match.start() in earlier or _EARLIER_BEFORE.search(before):
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


def _score_value(value: str, scale: str | None) -> int | None:
    number = math.ceil(float(value.replace(",", ".")))
    if scale is not None:
        # "12/10" is a patient saying "worse than the scale allows", not a typo.
        return min(number, 10) if scale == "10" else None
    return number if number <= 10 else None
