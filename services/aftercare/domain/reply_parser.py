"""Read a patient's SMS reply to the soreness check-in ("How sore are you today, 0-10?").

Pure text rules, English and French (Canada). The parser only says what the reply contains;
`triage` decides what to do with it.
"""
from __future__ import annotations

import math
import re
import unicodedata
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


def parse_reply(text: str) -> ParsedReply:
    normalized = _normalize(text)
    language = _language_hint(normalized)
    keyword_intent = _keyword_intent(normalized)
    if keyword_intent is not None:
        return ParsedReply(keyword_intent, language_hint=language)
    red_flags = _red_flags(normalized)
    if _asks_to_opt_out(normalized):
        return ParsedReply(ReplyIntent.OPT_OUT, red_flags=red_flags, language_hint=language)
    score, saw_ambiguous_number = _score(normalized)
    if score is not None:
        intent = ReplyIntent.SCORE
    elif red_flags or (not saw_ambiguous_number and _has_readable_words(normalized)):
        intent = ReplyIntent.FREE_TEXT
    else:
        intent = ReplyIntent.UNREADABLE
    return ParsedReply(intent, score, red_flags, language)


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    for curly in "\u2019\u2018\u02bc`\u00b4":
        text = text.replace(curly, "'")
    text = text.replace("\u2013", "-").replace("\u2014", "-").replace("\u2192", "->")
    # Dropping marks makes "ARRÊT", "fièvre" and keycap digits ("5️⃣" = 5 + FE0F + 20E3) plain.
    decomposed = unicodedata.normalize("NFD", text.casefold())
    plain = "".join(c for c in decomposed if unicodedata.category(c) not in ("Mn", "Me"))
    return " ".join(plain.split())


# --- carrier keywords and opt-out sentences -------------------------------------------------

# Twilio also opts a number in on YES; our check-in never asks a yes/no question, so a bare "yes"
# is read as free text rather than silently re-subscribing.
_KEYWORDS: dict[str, ReplyIntent] = {
    **dict.fromkeys(
        ["stop", "stopall", "stop all", "unsubscribe", "end", "quit", "revoke", "optout",
         "opt out", "cancel", "arret", "arrete", "arretez", "arreter"],
        ReplyIntent.OPT_OUT,
    ),
    **dict.fromkeys(["start", "unstop"], ReplyIntent.OPT_IN),
    **dict.fromkeys(["help", "aide", "info"], ReplyIntent.HELP),
}
_POLITE_WORDS = re.compile(
    r"\b(?:please|pls|plz|thanks|thank you|thx|merci|svp|stp|s'il vous plait|s'il te plait|now)\b"
)
_EDGE_SYMBOLS = re.compile(r"^[\W_]+|[\W_]+$")


def _keyword_intent(normalized: str) -> ReplyIntent | None:
    core = _EDGE_SYMBOLS.sub("", normalized)
    if core in _KEYWORDS:
        return _KEYWORDS[core]
    without_courtesy = " ".join(_EDGE_SYMBOLS.sub("", _POLITE_WORDS.sub(" ", core)).split())
    return _KEYWORDS.get(without_courtesy)


_OPT_OUT_SENTENCES = re.compile(
    "|".join([
        r"\b(?:stop|quit|cease)\s+(?:sending|texting|messaging|contacting|emailing)\b",
        r"\bstop\s+(?:(?:all\s+)?(?:the|these|those|your|all)\s+)?"
        r"(?:texts?|messages?|sms|reminders?|check-?ins?|notifications?)\b",
        r"\bunsubscribe\b",
        r"\bopt\s*-?\s*out\b",
        r"\b(?:don'?t|do not)\s+(?:text|message|contact|email|sms)\s+me\b",
        r"\bno\s+more\s+(?:texts?|messages?|sms)\b",
        r"\b(?:remove|take)\s+me\s+(?:off|from)\b",
        r"\b(?:arret(?:e|ez|er)?|cess(?:e|ez|er))\s+(?:de\s+)?(?:m'|me\s+)?"
        r"(?:envoyer|ecrire|texter|contacter)\b",
        r"\b(?:arret(?:e|ez|er)?|stop)\s+(?:les|ces|tes|vos)\s+(?:textos?|messages?|sms|rappels?)\b",
        r"\bne\s+m'(?:envoyez|ecrivez|textez|contactez)\s+plus\b",
        r"\bdesabonn(?:e|ez|er|ement)\b",
        r"\bdesinscri(?:re|s|t|vez|ption)\b",
        r"\bplus\s+de\s+(?:textos?|messages?|sms)\b",
    ])
)


def _asks_to_opt_out(normalized: str) -> bool:
    return _OPT_OUT_SENTENCES.search(normalized) is not None


# --- the score -------------------------------------------------------------------------------

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


def _score(normalized: str) -> tuple[int | None, bool]:
    """The score and whether a number was seen that could not be trusted as one."""
    text = _LETTER_O_TYPO.sub("10", normalized)
    text = _ONE_OUT_OF_TEN.sub("1", text)
    text = _DIX_SEPT_TO_NEUF.sub(lambda m: "1" + _NUMBER_WORDS[m.group(1)], text)
    if _ONE_ALONE.match(_EDGE_SYMBOLS.sub("", text)):
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


# --- red flags -------------------------------------------------------------------------------

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


def _red_flags(normalized: str) -> tuple[RedFlag, ...]:
    clauses = _CLAUSE_BREAK.split(_HEDGES.sub("unsure", normalized))
    found = [
        flag
        for flag, pattern in _COMPILED_RED_FLAGS.items()
        if any(_affirmed(match, clause) for clause in clauses for match in pattern.finditer(clause))
    ]
    return tuple(found)


def _affirmed(match: re.Match[str], clause: str) -> bool:
    words_before = clause[: match.start()].split()[-_NEGATION_REACH_WORDS:]
    if _NEGATION.search(" ".join(words_before)):
        return False
    return not _RESOLVED_AFTER.match(clause[match.end():])


# --- language and readability ----------------------------------------------------------------

_FRENCH_WORDS = frozenset(
    "je j j'ai suis ai mal douleur douleurs pas mais tres peu merci bonjour ca c'est sur environ"
    " peut-etre mieux bien fievre poitrine respirer arret arrete arretez aide oui non et le la les"
    " de du des ma mon mes un une avec encore toujours aujourd'hui hier plus moins fatigue"
    " correct beaucoup rien pres bras cou epaule dos jambe bleu raide partout rdv".split()
)
_ENGLISH_WORDS = frozenset(
    "i i'm im my the pain sore but and not very thanks thank better fine good about maybe chest"
    " breathe breathing today is it it's its yes no out of an feel feeling feels much"
    " little bit tired ok okay great bad worse still hurts hurt now yesterday help stop"
    " like pretty kinda sorta around with at see you went down gone less arm neck shoulder"
    " back leg bruise bruised bruising stiff swelling".split()
)
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _language_hint(normalized: str) -> Language | None:
    words = _WORD.findall(normalized)
    french = sum(word in _FRENCH_WORDS for word in words)
    english = sum(word in _ENGLISH_WORDS for word in words)
    if french == english:
        return None
    return Language.FRENCH if french > english else Language.ENGLISH


def _has_readable_words(normalized: str) -> bool:
    return any(
        word in _FRENCH_WORDS or word in _ENGLISH_WORDS for word in _WORD.findall(normalized)
    )
