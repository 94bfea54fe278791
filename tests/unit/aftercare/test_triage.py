"""What the clinic does with a reply to the soreness check-in."""
from __future__ import annotations

import pytest

from services.aftercare.domain.reply_parser import ParsedReply, RedFlag, ReplyIntent, parse_reply
from services.aftercare.domain.triage import TriageAction, TriageDecision, TriageRules, triage

RULES = TriageRules()  # reassure at 3 or below, escalate at 7 or above


def decide(
    reply: str, *, previous_score: int | None = None, unreadable_so_far: int = 0
) -> TriageDecision:
    return triage(
        parse_reply(reply),
        previous_score=previous_score,
        unreadable_replies_so_far=unreadable_so_far,
        rules=RULES,
    )


@pytest.mark.parametrize(
    ("reply", "previous_score", "action", "ends_check_ins"),
    [
        pytest.param("0", None, TriageAction.REASSURE, True, id="0 is reassured"),
        pytest.param("3", None, TriageAction.REASSURE, True, id="3 is reassured and check-ins end"),
        pytest.param("deux", None, TriageAction.REASSURE, True, id="deux is reassured"),
        pytest.param("4", None, TriageAction.CARE_ADVICE, False, id="4 gets care advice"),
        pytest.param("6ish", None, TriageAction.CARE_ADVICE, False, id="6ish gets care advice"),
        pytest.param("7/10", None, TriageAction.ESCALATE, True, id="7 escalates"),
        pytest.param("10/10 would recommend", None, TriageAction.ESCALATE, True, id="10/10 escalates"),
        pytest.param("5", 6, TriageAction.CARE_ADVICE, False, id="better than last time"),
        pytest.param("5", 5, TriageAction.CARE_ADVICE, False, id="same as last time"),
        pytest.param("6", 4, TriageAction.ESCALATE, True, id="worse at the later check-in"),
        pytest.param("2", 1, TriageAction.REASSURE, True, id="mild soreness a little higher is still mild"),
        pytest.param("2", 4, TriageAction.REASSURE, True, id="improved to low"),
        pytest.param("3 but my chest hurts", None, TriageAction.ESCALATE, True, id="low score with a red flag"),
        pytest.param("no fever, 2", None, TriageAction.REASSURE, True, id="negated flag does not escalate"),
        pytest.param("STOP", None, TriageAction.OPT_OUT, True, id="STOP"),
        pytest.param("arrêtez de m'envoyer des messages", None, TriageAction.OPT_OUT, True,
                     id="french opt-out sentence"),
        pytest.param("START", None, TriageAction.OPT_IN, False, id="START"),
        pytest.param("AIDE", None, TriageAction.HELP, False, id="AIDE"),
    ],
)
def test_action_for_a_reply(
    reply: str, previous_score: int | None, action: TriageAction, ends_check_ins: bool
) -> None:
    decision = decide(reply, previous_score=previous_score)

    assert (decision.action, decision.ends_check_ins) == (action, ends_check_ins)


@pytest.mark.parametrize(
    ("reply", "unreadable_so_far", "action"),
    [
        pytest.param("asdf", 0, TriageAction.ASK_TO_CLARIFY, id="first gibberish is clarified"),
        pytest.param("asdf", 1, TriageAction.REFER_TO_STAFF, id="second gibberish goes to staff"),
        pytest.param("15", 0, TriageAction.ASK_TO_CLARIFY, id="ambiguous number is clarified"),
        pytest.param("not 10 anymore", 1, TriageAction.REFER_TO_STAFF, id="second unclear goes to staff"),
        pytest.param("feeling fine thanks", 0, TriageAction.ASK_TO_CLARIFY,
                     id="free text without a score is clarified"),
        pytest.param("ça va bien", 2, TriageAction.REFER_TO_STAFF, id="third unclear still goes to staff"),
        pytest.param("no fever but chest pain", 1, TriageAction.ESCALATE, id="a red flag beats the unreadable count"),
    ],
)
def test_one_clarification_then_staff(reply: str, unreadable_so_far: int, action: TriageAction) -> None:
    assert decide(reply, unreadable_so_far=unreadable_so_far).action is action


@pytest.mark.parametrize(
    ("reply", "previous_score", "reasons"),
    [
        pytest.param("3 but my chest hurts", None, ("red_flag:chest_pain",), id="red flag reason"),
        pytest.param("8", None, ("score_at_or_above:7",), id="high score reason"),
        pytest.param("6", 4, ("worse_than_previous:4->6",), id="worse than previous reason"),
        pytest.param("9", 5, ("score_at_or_above:7", "worse_than_previous:5->9"), id="both score reasons"),
        pytest.param(
            "stop texting me, I have chest pain",
            None,
            ("red_flag:chest_pain", "opt_out_requested"),
            id="red flag wins over opt-out, which is still reported",
        ),
    ],
)
def test_escalation_reasons(reply: str, previous_score: int | None, reasons: tuple[str, ...]) -> None:
    decision = decide(reply, previous_score=previous_score)

    assert decision.action is TriageAction.ESCALATE
    assert decision.reasons == reasons


@pytest.mark.parametrize(
    ("reply", "call_911"),
    [
        pytest.param("chest pain", True, id="chest pain"),
        pytest.param("j'ai de la misère à respirer", True, id="trouble breathing in French"),
        pytest.param("2, but short of breath", True, id="low score and short of breath"),
        pytest.param("fever", False, id="fever: call the clinic, not 911"),
        pytest.param("swollen and oozing", False, id="site infection: not 911"),
        pytest.param("9", False, id="high score alone: not 911"),
    ],
)
def test_911_advice_only_for_chest_pain_or_breathing(reply: str, call_911: bool) -> None:
    assert decide(reply).urgent_911_advice is call_911


def test_clinic_can_move_the_thresholds() -> None:
    strict = TriageRules(reassure_at_or_below=1, escalate_at_or_above=5)
    reply = ParsedReply(ReplyIntent.SCORE, score=5)

    decision = triage(reply, previous_score=None, unreadable_replies_so_far=0, rules=strict)

    assert decision.reasons == ("score_at_or_above:5",)


def test_flags_escalate_whatever_the_score() -> None:
    reply = ParsedReply(ReplyIntent.SCORE, score=0, red_flags=(RedFlag.FEVER,))

    decision = triage(reply, previous_score=None, unreadable_replies_so_far=0, rules=RULES)

    assert decision.action is TriageAction.ESCALATE


@pytest.mark.parametrize(
    ("reassure", "escalate"),
    [
        pytest.param(-1, 7, id="negative reassure"),
        pytest.param(7, 7, id="equal thresholds"),
        pytest.param(8, 7, id="reassure above escalate"),
        pytest.param(3, 11, id="escalate above 10"),
    ],
)
def test_invalid_rules_are_refused(reassure: int, escalate: int) -> None:
    with pytest.raises(ValueError, match="reassure_at_or_below"):
        TriageRules(reassure_at_or_below=reassure, escalate_at_or_above=escalate)


@pytest.mark.parametrize(
    ("previous_score", "unreadable_so_far"),
    [pytest.param(11, 0, id="previous score above 10"), pytest.param(None, -1, id="negative count")],
)
def test_invalid_history_is_refused(previous_score: int | None, unreadable_so_far: int) -> None:
    with pytest.raises(ValueError):
        decide("5", previous_score=previous_score, unreadable_so_far=unreadable_so_far)
