"""Decide what the clinic does with a patient's reply to the soreness check-in."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.aftercare.domain.reply_parser import ParsedReply, RedFlag, ReplyIntent


class TriageAction(StrEnum):
    REASSURE = "reassure"  # low score: normal-soreness advice, no more check-ins for this visit
    CARE_ADVICE = "care_advice"  # middle score: self-care advice, check-ins continue
    ESCALATE = "escalate"  # staff contact the patient
    ASK_TO_CLARIFY = "ask_to_clarify"
    REFER_TO_STAFF = "refer_to_staff"  # second reply in a row we could not read
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


@dataclass(frozen=True)
class TriageRules:
    reassure_at_or_below: int = 3
    escalate_at_or_above: int = 7

    def __post_init__(self) -> None:
        if not 0 <= self.reassure_at_or_below < self.escalate_at_or_above <= 10:
            raise ValueError(
                "triage rules need 0 <= reassure_at_or_below < escalate_at_or_above <= 10, got "
                f"reassure_at_or_below={self.reassure_at_or_below}, "
                f"escalate_at_or_above={self.escalate_at_or_above}"
            )


@dataclass(frozen=True)
class TriageDecision:
    action: TriageAction
    reasons: tuple[str, ...]
    ends_check_ins: bool
    urgent_911_advice: bool = False


_CALL_911_FLAGS = frozenset({RedFlag.CHEST_PAIN, RedFlag.SHORTNESS_OF_BREATH})
_KEYWORD_ACTIONS = {
    ReplyIntent.OPT_OUT: TriageAction.OPT_OUT,
    ReplyIntent.OPT_IN: TriageAction.OPT_IN,
    ReplyIntent.HELP: TriageAction.HELP,
}


def triage(
    reply: ParsedReply,
    *,
    previous_score: int | None,
    unreadable_replies_so_far: int,
    rules: TriageRules,
) -> TriageDecision:
    if previous_score is not None and not 0 <= previous_score <= 10:
        raise ValueError(f"previous_score must be 0..10, got {previous_score}")
    if unreadable_replies_so_far < 0:
        raise ValueError(f"unreadable_replies_so_far must be >= 0, got {unreadable_replies_so_far}")

    escalation = _escalation_reasons(reply, previous_score, rules)
    if escalation:
        if reply.intent is ReplyIntent.OPT_OUT:
            # Safety first, but the opt-out must still be recorded: the caller reads this reason.
            escalation = (*escalation, "opt_out_requested")
        return TriageDecision(
            TriageAction.ESCALATE,
            escalation,
            # Staff now own the follow-up; automated "how sore?" texts would talk over them.
            ends_check_ins=True,
            urgent_911_advice=any(flag in _CALL_911_FLAGS for flag in reply.red_flags),
        )
    if reply.intent in _KEYWORD_ACTIONS:
        action = _KEYWORD_ACTIONS[reply.intent]
        return TriageDecision(action, (f"keyword:{reply.intent}",), action is TriageAction.OPT_OUT)
    if reply.score is None:
        if unreadable_replies_so_far == 0:
            return TriageDecision(TriageAction.ASK_TO_CLARIFY, (f"no_score:{reply.intent}",), False)
        return TriageDecision(
            TriageAction.REFER_TO_STAFF,
            (f"no_score:{reply.intent}", f"unreadable_replies:{unreadable_replies_so_far + 1}"),
            False,
        )
    if reply.score <= rules.reassure_at_or_below:
        return TriageDecision(
            TriageAction.REASSURE, (f"score_at_or_below:{rules.reassure_at_or_below}",), True
        )
    return TriageDecision(TriageAction.CARE_ADVICE, (f"score_between:{reply.score}",), False)


def _escalation_reasons(
    reply: ParsedReply, previous_score: int | None, rules: TriageRules
) -> tuple[str, ...]:
    reasons = [f"red_flag:{flag}" for flag in reply.red_flags]
    score = reply.score
    if score is not None:
        if score >= rules.escalate_at_or_above:
            reasons.append(f"score_at_or_above:{rules.escalate_at_or_above}")
        # Soreness creeping from 1 to 2 is still normal; getting worse only worries once it is
        # past what the clinic calls mild.
        if previous_score is not None and score > previous_score and score > rules.reassure_at_or_below:
            reasons.append(f"worse_than_previous:{previous_score}->{score}")
    return tuple(reasons)
