"""Carrier keywords (STOP, ARRET, START, HELP, AIDE...) and sentences that ask to opt out."""
from __future__ import annotations

import re

from services.aftercare.domain.reply_kinds import ReplyIntent
from services.aftercare.domain.reply_text import EDGE_SYMBOLS

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


def keyword_intent(normalized: str) -> ReplyIntent | None:
    core = EDGE_SYMBOLS.sub("", normalized)
    if core in _KEYWORDS:
        return _KEYWORDS[core]
    without_courtesy = " ".join(EDGE_SYMBOLS.sub("", _POLITE_WORDS.sub(" ", core)).split())
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


def asks_to_opt_out(normalized: str) -> bool:
    return _OPT_OUT_SENTENCES.search(normalized) is not None
