"""Which language a reply is in, and whether it has readable words at all."""
from __future__ import annotations

import re

from services.aftercare.domain.reply_kinds import Language

_FRENCH_TEXT = (
    "je j j'ai suis ai mal douleur douleurs pas mais tres peu merci bonjour ca c'est sur environ"
    " peut-etre mieux bien fievre poitrine respirer arret arrete arretez aide oui non et le la les"
    " de du des ma mon mes un une avec encore toujours aujourd'hui hier plus moins fatigue"
    " correct beaucoup rien pres bras cou epaule dos jambe bleu raide partout rdv"
)
_FRENCH_WORDS = frozenset(_FRENCH_TEXT.split())
_ENGLISH_TEXT = (
    "i i'm im my the pain sore but and not very thanks thank better fine good about maybe chest"
    " breathe breathing today is it it's its yes no out of an feel feeling feels much"
    " little bit tired ok okay great bad worse still hurts hurt now yesterday help stop"
    " like pretty kinda sorta around with at see you went down gone less arm neck shoulder"
    " back leg bruise bruised bruising stiff swelling"
)
_ENGLISH_WORDS = frozenset(_ENGLISH_TEXT.split())
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def language_hint(normalized: str) -> Language | None:
    words = _WORD.findall(normalized)
    french = sum(word in _FRENCH_WORDS for word in words)
    english = sum(word in _ENGLISH_WORDS for word in words)
    if french == english:
        return None
    return Language.FRENCH if french > english else Language.ENGLISH


def has_readable_words(normalized: str) -> bool:
    return any(
        word in _FRENCH_WORDS or word in _ENGLISH_WORDS for word in _WORD.findall(normalized)
    )
