"""Red-flag words after needling, in English and French, with simple negation."""
from __future__ import annotations

import re
from bisect import bisect_right
from typing import NamedTuple

from services.aftercare.domain.reply_kinds import RedFlag

_RED_FLAG_PATTERNS: dict[RedFlag, tuple[str, ...]] = {
    RedFlag.CHEST_PAIN: (
        r"\bchest\s*(?:pains?|pian|hurts?|hurting|is hurting|is sore|sore|tight(?:ness)?|is tight"
        r"|feels tight|pressure|discomfort)",
        r"\b(?:pain|pian|ache|aching|hurts?|pressure|tightness)\s+(?:in|on)\s+(?:my|the)\s+chest",
        r"\btight\s+chest",
        r"\b(?:douleurs?|mal|serrement|pression|oppression)\s+(?:a|dans|sur)\s+(?:la|ma)\s+poitrine",
        r"\bdouleurs?\s+thoraciques?",
        r"\bpoitrine\s+(?:me\s+)?(?:fait\s+mal|serree|qui\s+serre|douloureuse)",
    ),
    RedFlag.SHORTNESS_OF_BREATH: (
        r"\bshort(?:ness)?\s+(?:of\s+)?breath",
        r"\b(?:can ?not|can'?t|cant|could ?n'?t|couldnt|hard to|hard time|trouble|difficulty"
        r"|difficult to|struggling to|struggle to|problems?|unable to|hurts to|painful to"
        r"|pain when|pain while|hurts when i)\s+(?:to\s+)?(?:catch\s+my\s+)?breath(?:e|es|ing)?\b",
        r"\bout\s+of\s+breath",
        r"\bbreathless",
        r"\bbreathing\s+(?:is\s+)?(?:hard|difficult|painful|hurts|laboured|labored)",
        r"\bessouffl[ea]",
        r"\b(?:souffle\s+court|court\s+de\s+souffle|manque\s+de\s+souffle|manque\s+d'air)",
        r"\b(?:difficulte|mal|misere|peine)\s+a\s+respirer",
        r"\b(?:peux|peut|arrive|capable)\s+pas\s+(?:a\s+)?respirer",
        r"\brespire\s+mal|\brespirer\s+(?:est\s+)?difficile",
        r"\bmal\s+(?:quand|en)\s+(?:je\s+)?respir",
    ),
    RedFlag.FEVER: (
        r"\bfever(?:ish|s)?\b",
        r"\bfievre|\bfievreu(?:x|se)\b",
        r"\b(?:a|high|running a)\s+temperature\b",
        r"\b(?:fais|fait|faire)\s+de\s+la\s+temperature",
        r"\bchills\b|\bfrissons?\b",
    ),
    RedFlag.SPREADING_REDNESS: (
        r"\bred(?:ness)?\b[^.]{0,25}\bspread",
        r"\bspreading\s+red",
        r"\bred\s+(?:streaks?|lines?)",
        r"\bredness\s+(?:is\s+)?(?:getting\s+)?(?:bigger|growing|larger)",
        r"\brougeurs?\b[^.]{0,25}(?:s'etend|\betend|se\s+propage|\bgrandit|\bgrossit|\baugmente)",
    ),
    RedFlag.WARMTH: (
        r"\b(?:hot|warm)\s+to\s+(?:the\s+)?touch",
        r"\bchaude?s?\s+au\s+toucher",
    ),
    RedFlag.SWELLING: (
        r"\bswell(?:ing|ed|s)?\b|\bswollen\b",
        r"\benfl(?:ure|e|ee|es|ees|er)\b",
        r"\bgonfl(?:e|ee|es|ees|ement|er)\b",
        r"\boedeme\b",
    ),
    RedFlag.PUS: (
        r"\bpuss?\b",
        r"\booz(?:e|es|ing)\b",
        r"\bdischarge\b",
        r"\binfect(?:ed|ion|ee|e)\b",
        r"\bsuint(?:e|ement)\b",
    ),
    RedFlag.NUMBNESS: (
        r"\bnumb(?:ness)?\b",
        # Tingling is read as numbness: same nerve question, and a call back costs little.
        r"\btingl(?:e|es|ing|y)\b|\bpins\s+and\s+needles\b",
        r"\b(?:can'?t|cannot)\s+feel\s+my\b",
        r"\bengourdi(?:e|s|es|ssement)?\b",
        r"\bfourmill(?:e|ements?)\b|\bpicotements?\b",
    ),
    RedFlag.WEAKNESS: (
        r"\bweak(?:ness)?\b",
        r"\b(?:can'?t|cannot|can not|unable to)\s+(?:lift|raise|grip|hold)\b",
        r"\b(?:lost|losing)\s+(?:my\s+)?strength\b",
        r"\bfaiblesse\b|\bfaible\b",
        r"\b(?:peux|peut|capable)\s+pas\s+(?:lever|soulever)\b",
        r"\bperte\s+de\s+force\b",
    ),
    RedFlag.SEVERE_OR_WORSENING_PAIN: (
        r"\bworse\b|\bworsening\b|\bworst\s+(?:pain|ever)\b",
        r"\bunbearable\b|\bexcruciating\b|\bsevere\b|\bagony\b",
        r"\bpire\b|\bempire\b|\baggrave\b|\binsupportable\b|\batroce\b|\bintolerable\b",
    ),
}
_COMPILED_RED_FLAGS = {
    flag: re.compile("|".join(patterns)) for flag, patterns in _RED_FLAG_PATTERNS.items()
}
# Red and warm together at a site is how an infection starts, even without "to the touch". Patients
# list them with commas ("red, warm"), which would split them into clauses: read the whole reply.
_RED_AND_WARM = re.compile(
    r"\b(?:red|hot|warm)\b(?:\s*,\s*|\s+and\s+|\s*&\s*|\s+)(?:red|hot|warm)\b"
    r"|\b(?:rouge|chaude?)s?\b(?:\s*,\s*|\s+et\s+|\s+)(?:rouge|chaude?)s?\b"
)
# Uncertainty is not denial: "not sure if it's swelling" must still flag.
_HEDGES = re.compile(r"\b(?:not sure|not certain|don'?t know|dunno|pas sur|sais pas|sait pas)\b")
_CLAUSE_BREAK = re.compile(
    r"[.;!?,\n]|\b(?:but|mais|however|though|although|except|sauf|cependant|pourtant|just|only"
    r"|still|juste|seulement|encore|toujours)\b"
    r"|\b(?:and|et)\b(?=\s+(?:i|i'm|im|my|it|its|it's|the|j'|je|j|ma|mon|mes|ca|il|elle|la|le)\b)"
)
_NEGATION = re.compile(
    r"\b(?:no|not|don'?t|doesn'?t|didn'?t|haven'?t|hasn'?t|isn'?t|aren'?t|never|without|none"
    r"|nor|zero|0|could|aucune?|pas|sans|ni|jamais|pourrait)\b"
    r"|\bn'(?:ai|a|est|y a)\s+plus\b|\bne\s+\w+\s+plus\b"
)
_RESOLVED_AFTER = re.compile(
    r"\s*(?:(?:is|has|have|are)\s+)?(?:gone|went away|went down|going down|gone down|resolved"
    r"|disappeared|improving|better|subsided)\b"
    r"|\s*(?:(?:est|a|sont|ont)\s+)?(?:partie?s?|disparue?s?|diminuee?s?|finie?s?|baisse)\b"
)
_NEGATION_REACH_WORDS = 5
_RESOLVED_REACH = 40  # longer than the longest "is/has ... gone/better" phrase above


def red_flags_in(normalized: str) -> tuple[RedFlag, ...]:
    hedged = _HEDGES.sub("unsure", normalized)
    clauses = _clauses(hedged)
    found = [flag for flag, pattern in _COMPILED_RED_FLAGS.items() if _affirmed_in_a_clause(pattern, hedged, clauses)]
    whole = _Clauses([0], [len(normalized)])
    if RedFlag.WARMTH not in found and _affirmed_in_a_clause(_RED_AND_WARM, normalized, whole):
        found.insert(list(_COMPILED_RED_FLAGS).index(RedFlag.WARMTH), RedFlag.WARMTH)
    return tuple(found)


class _Clauses(NamedTuple):
    starts: list[int]
    ends: list[int]


def _clauses(text: str) -> _Clauses:
    """Where each clause of `text` starts and ends: the text between two clause breaks."""
    starts, ends = [0], []
    for found in _CLAUSE_BREAK.finditer(text):
        ends.append(found.start())
        starts.append(found.end())
    ends.append(len(text))
    return _Clauses(starts, ends)


def _affirmed_in_a_clause(pattern: re.Pattern[str], text: str, clauses: _Clauses) -> bool:
    """Whether `pattern` matches, not negated, within one clause of `text`.

    The same as matching each clause on its own, in a number of steps that grows with the text and
    the flag's mentions, not with the number of clauses: the whole text is searched for the next
    mention, and a mention counts only as far as its own clause reaches (`endpos`). A match within
    a clause is also a match of the whole text, so no mention is skipped.
    """
    position = 0
    while (candidate := pattern.search(text, position)) is not None:
        at = candidate.start()
        clause = bisect_right(clauses.starts, at) - 1
        start, end = clauses.starts[clause], clauses.ends[clause]
        # A mention that ends in its clause is the clause's own; one that runs on past it is read again
        # within the clause, from the same place.
        within = candidate if candidate.end() <= end else pattern.match(text, at, end) if at < end else None
        if within is not None and _affirmed(within, text, start, end):
            return True
        position = within.end() if within is not None and within.end() > at else at + 1
    return False


def _affirmed(match: re.Match[str], text: str, clause_start: int, clause_end: int) -> bool:
    if _NEGATION.search(" ".join(_words_before(text, clause_start, match.start(), _NEGATION_REACH_WORDS))):
        return False
    return not _RESOLVED_AFTER.match(text, match.end(), min(clause_end, match.end() + _RESOLVED_REACH))


def _words_before(text: str, start: int, end: int, count: int) -> list[str]:
    """The last `count` words of `text[start:end]`, reading back only as far as they reach.

    Splitting all of the clause before each red-flag word would cost the square of a long clause.
    A window that begins inside a word cuts only that first word: with more than `count` words in
    the window, the last `count` are whole.
    """
    reach = 64
    while True:
        begin = max(start, end - reach)
        words = text[begin:end].split()
        if begin == start or len(words) > count:
            return words[-count:]
        reach *= 2
