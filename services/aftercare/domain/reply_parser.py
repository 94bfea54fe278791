"""Read a patient's SMS reply to the soreness check-in ("How sore are you today, 0-10?").

Pure text rules, English and French (Canada). The parser only says what the reply contains;
`triage` decides what to do with it.
"""
from __future__ import annotations

from services.aftercare.domain.reply_keywords import asks_to_opt_out, keyword_intent
from services.aftercare.domain.reply_kinds import (
    Language,
    ParsedReply,
    RedFlag,
    ReplyIntent,
)
from services.aftercare.domain.reply_language import has_readable_words, language_hint
from services.aftercare.domain.reply_red_flags import red_flags_in
from services.aftercare.domain.reply_scores import score_in
from services.aftercare.domain.reply_text import normalize

__all__ = ["Language", "ParsedReply", "RedFlag", "ReplyIntent", "parse_reply"]


def parse_reply(text: str) -> ParsedReply:
    normalized = normalize(text)
    language = language_hint(normalized)
    keyword = keyword_intent(normalized)
    if keyword is not None:
        return ParsedReply(keyword, language_hint=language)
    red_flags = red_flags_in(normalized)
    if asks_to_opt_out(normalized):
        return ParsedReply(ReplyIntent.OPT_OUT, red_flags=red_flags, language_hint=language)
    score, saw_ambiguous_number = score_in(normalized)
    if score is not None:
        intent = ReplyIntent.SCORE
    elif red_flags or (not saw_ambiguous_number and has_readable_words(normalized)):
        intent = ReplyIntent.FREE_TEXT
    else:
        intent = ReplyIntent.UNREADABLE
    return ParsedReply(intent, score, red_flags, language)
