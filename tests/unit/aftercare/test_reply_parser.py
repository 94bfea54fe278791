"""What the clinic reads in a patient's reply to "How sore are you today, 0-10?"."""
from __future__ import annotations

import pytest

from services.aftercare.domain.reply_parser import (
    Language,
    ParsedReply,
    RedFlag,
    ReplyIntent,
    parse_reply,
)

SCORE = ReplyIntent.SCORE
OPT_OUT = ReplyIntent.OPT_OUT
OPT_IN = ReplyIntent.OPT_IN
HELP = ReplyIntent.HELP
FREE_TEXT = ReplyIntent.FREE_TEXT
UNREADABLE = ReplyIntent.UNREADABLE

CHEST = RedFlag.CHEST_PAIN
BREATH = RedFlag.SHORTNESS_OF_BREATH
FEVER = RedFlag.FEVER
REDNESS = RedFlag.SPREADING_REDNESS
WARMTH = RedFlag.WARMTH
SWELLING = RedFlag.SWELLING
PUS = RedFlag.PUS
NUMB = RedFlag.NUMBNESS
WEAK = RedFlag.WEAKNESS
WORSE = RedFlag.SEVERE_OR_WORSENING_PAIN


def case(reply: str, intent: ReplyIntent, score: int | None = None, *flags: RedFlag, id: str):
    return pytest.param(reply, intent, score, set(flags), id=id)


CARRIER_KEYWORDS = [
    case("STOP", OPT_OUT, id="STOP"),
    case("stop", OPT_OUT, id="stop lower case"),
    case("  Stop.  ", OPT_OUT, id="stop with spaces and full stop"),
    case("STOP!!!", OPT_OUT, id="stop shouted"),
    case("Stop please", OPT_OUT, id="stop please"),
    case("ARRET", OPT_OUT, id="ARRET"),
    case("ARRÊT", OPT_OUT, id="ARRET with circumflex"),
    case("Arrêtez svp", OPT_OUT, id="arretez svp"),
    case("STOPALL", OPT_OUT, id="STOPALL"),
    case("unsubscribe", OPT_OUT, id="UNSUBSCRIBE"),
    case("END", OPT_OUT, id="END"),
    case("quit", OPT_OUT, id="QUIT"),
    case("REVOKE", OPT_OUT, id="REVOKE"),
    case("OPTOUT", OPT_OUT, id="OPTOUT"),
    # Twilio has already opted the number out on a bare CANCEL, so we must agree with it.
    case("Cancel", OPT_OUT, id="CANCEL alone is a carrier opt-out"),
    case("START", OPT_IN, id="START"),
    case("unstop", OPT_IN, id="UNSTOP"),
    case("HELP", HELP, id="HELP"),
    case("help?", HELP, id="help with question mark"),
    case("AIDE", HELP, id="AIDE"),
    case("info", HELP, id="INFO"),
    # Our check-in never asks a yes/no question; YES is not treated as opting back in.
    case("YES", FREE_TEXT, id="YES is free text, not opt-in"),
]

OPT_OUT_SENTENCES = [
    case("stop sending these", OPT_OUT, id="stop sending these"),
    case("Please stop texting me", OPT_OUT, id="please stop texting me"),
    case("stop the texts thanks", OPT_OUT, id="stop the texts"),
    case("unsubscribe me", OPT_OUT, id="unsubscribe me"),
    case("Don't text me anymore", OPT_OUT, id="don't text me"),
    case("no more messages please", OPT_OUT, id="no more messages"),
    case("remove me from this list", OPT_OUT, id="remove me from"),
    case("Arrêtez de m'envoyer des messages", OPT_OUT, id="arretez de m'envoyer"),
    case("arrete de m’ecrire", OPT_OUT, id="arrete de m'ecrire curly apostrophe"),
    case("Ne m'envoyez plus de textos", OPT_OUT, id="ne m'envoyez plus"),
    case("je veux me désabonner", OPT_OUT, id="desabonner"),
    case("cancel my appointment", FREE_TEXT, id="cancel my appointment is not an opt-out"),
    case("the pain stopped", FREE_TEXT, id="the pain stopped is not an opt-out"),
    case("it stopped hurting last night", FREE_TEXT, id="stopped hurting is not an opt-out"),
    case("la douleur a arrêté", FREE_TEXT, id="la douleur a arrete is not an opt-out"),
]

SCORES = [
    case("3", SCORE, 3, id="bare digit"),
    case("0", SCORE, 0, id="zero digit"),
    case("10", SCORE, 10, id="ten digit"),
    case("7/10", SCORE, 7, id="7/10"),
    case("7 / 10", SCORE, 7, id="7 / 10 with spaces"),
    case("7 out of 10", SCORE, 7, id="7 out of 10"),
    case("4 out of ten", SCORE, 4, id="4 out of ten"),
    case("about a 6", SCORE, 6, id="about a 6"),
    case("maybe 5", SCORE, 5, id="maybe 5"),
    case("6ish", SCORE, 6, id="6ish"),
    case("score: 4", SCORE, 4, id="score: 4"),
    case("0 pain", SCORE, 0, id="0 pain"),
    case("zero", SCORE, 0, id="zero word"),
    case("two", SCORE, 2, id="two word"),
    case("Ten", SCORE, 10, id="ten word"),
    case("one", SCORE, 1, id="one alone"),
    case("huit", SCORE, 8, id="huit"),
    case("Deux", SCORE, 2, id="deux"),
    case("neuf", SCORE, 9, id="neuf"),
    case("sept sur dix", SCORE, 7, id="sept sur dix"),
    case("un sur dix", SCORE, 1, id="un sur dix"),
    case("à peu près 5", SCORE, 5, id="a peu pres 5"),
    case("environ 4 aujourd'hui", SCORE, 4, id="environ 4 aujourd'hui"),
    case("5/10 today", SCORE, 5, id="5/10 today"),
    case("J'ai une douleur à 6", SCORE, 6, id="une douleur is an article, not a score"),
    case("I'm at a 3", SCORE, 3, id="I'm at a 3"),
    case("😣 8", SCORE, 8, id="emoji then 8"),
    case("2 👍", SCORE, 2, id="2 then thumbs up"),
    case("5️⃣", SCORE, 5, id="keycap 5"),
    case("１０", SCORE, 10, id="full-width digits"),
    case("3-4", SCORE, 4, id="range 3-4 takes the higher"),
    case("3 – 4", SCORE, 4, id="range with en dash"),
    case("3 or 4", SCORE, 4, id="3 or 4 takes the higher"),
    case("6 ou 7", SCORE, 7, id="6 ou 7 takes the higher"),
    case("6.5", SCORE, 7, id="half point rounds up"),
    case("6,5", SCORE, 7, id="French decimal comma rounds up"),
    case("8 :(", SCORE, 8, id="8 sad face"),
    case("5.", SCORE, 5, id="5 full stop"),
    case("1O", SCORE, 10, id="1O typo with letter O"),
    case("not a 10 anymore, more like a 6", SCORE, 6, id="negated 10 then 6"),
    case("was 8 now 4", SCORE, 4, id="was 8 now 4 reads the current score"),
    case("went from 7 to 3", SCORE, 3, id="went from 7 to 3"),
    case("5 (was 7 yesterday)", SCORE, 5, id="score with yesterday in brackets"),
    case("Hier 8, aujourd'hui 5", SCORE, 5, id="hier 8 aujourd'hui 5"),
    case("2 days later still a 5", SCORE, 5, id="days are not a score"),
    case("took 2 advil, now 3", SCORE, 3, id="pills are not a score"),
    case("No fever, no swelling, about a 2", SCORE, 2, id="negated flags with a score"),
    # Hyperbole above the scale means "the worst", so it is kept as 10 and escalates.
    case("12/10", SCORE, 10, id="12/10 is read as 10"),
    case("10/10 would recommend", SCORE, 10, id="10/10 would recommend is a 10"),
    case("no pain", SCORE, 0, id="no pain is 0"),
    case("Pain free today!", SCORE, 0, id="pain free is 0"),
    case("aucune douleur", SCORE, 0, id="aucune douleur is 0"),
]

NO_USABLE_SCORE = [
    case("", UNREADABLE, id="empty"),
    case("   ", UNREADABLE, id="only spaces"),
    case("asdfgh", UNREADABLE, id="keyboard mash"),
    case("👍", UNREADABLE, id="only an emoji"),
    case("15", UNREADABLE, id="15 is ambiguous"),
    case("50%", UNREADABLE, id="a percentage is ambiguous"),
    case("3/5", UNREADABLE, id="another scale is ambiguous"),
    case("not 10 anymore", UNREADABLE, id="not 10 anymore"),
    case("pas 10", UNREADABLE, id="pas 10"),
    case("no longer a 9", UNREADABLE, id="no longer a 9"),
    case("feeling fine thanks", FREE_TEXT, id="feeling fine thanks"),
    case("ça va bien merci", FREE_TEXT, id="ca va bien merci"),
    case("ok", FREE_TEXT, id="ok"),
    case("at 3pm", FREE_TEXT, id="a time is not a score"),
    case("see you on the 5th", FREE_TEXT, id="a date is not a score"),
    case("rdv à 15h", FREE_TEXT, id="15h is a time"),
    case("no pain relief from advil", FREE_TEXT, id="no pain relief is not 0"),
    case("les deux bras", FREE_TEXT, id="les deux is not a score"),
    case("dix-huit", UNREADABLE, id="dix-huit is 18, not 10"),
]

RED_FLAGS = [
    case("chest pain", FREE_TEXT, None, CHEST, id="chest pain"),
    case("pain in my chest", FREE_TEXT, None, CHEST, id="pain in my chest"),
    case("tight chest 4/10", SCORE, 4, CHEST, id="tight chest with a score"),
    case("chest pian", FREE_TEXT, None, CHEST, id="chest pian typo"),
    case("3 but my chest hurts", SCORE, 3, CHEST, id="3 but my chest hurts"),
    case("douleur à la poitrine", FREE_TEXT, None, CHEST, id="douleur a la poitrine"),
    case("douleur thoracique", FREE_TEXT, None, CHEST, id="douleur thoracique"),
    case("j'ai mal à la poitrine", FREE_TEXT, None, CHEST, id="mal a la poitrine"),
    case("short of breath", FREE_TEXT, None, BREATH, id="short of breath"),
    case("Shortness of breath since last night", FREE_TEXT, None, BREATH, id="shortness of breath"),
    case("I can't breathe", FREE_TEXT, None, BREATH, id="can't breathe"),
    case("cant breath", FREE_TEXT, None, BREATH, id="cant breath typo"),
    case("trouble breathing", FREE_TEXT, None, BREATH, id="trouble breathing"),
    case("hard to breathe 6", SCORE, 6, BREATH, id="hard to breathe with a score"),
    case("difficulty breathing", FREE_TEXT, None, BREATH, id="difficulty breathing"),
    case("out of breath going up stairs", FREE_TEXT, None, BREATH, id="out of breath"),
    case("it hurts to breathe", FREE_TEXT, None, BREATH, id="hurts to breathe"),
    case("essoufflée", FREE_TEXT, None, BREATH, id="essoufflee"),
    case("souffle court", FREE_TEXT, None, BREATH, id="souffle court"),
    case("difficulté à respirer", FREE_TEXT, None, BREATH, id="difficulte a respirer"),
    case("j'ai du mal à respirer", FREE_TEXT, None, BREATH, id="du mal a respirer"),
    case("j'ai de la misère à respirer", FREE_TEXT, None, BREATH, id="misere a respirer"),
    case("fever", FREE_TEXT, None, FEVER, id="fever"),
    case("feeling feverish, 5", SCORE, 5, FEVER, id="feverish with a score"),
    case("fièvre", FREE_TEXT, None, FEVER, id="fievre"),
    case("je fais de la température", FREE_TEXT, None, FEVER, id="faire de la temperature"),
    case("fever 38.5", FREE_TEXT, None, FEVER, id="a temperature reading is not a score"),
    case("spreading redness", FREE_TEXT, None, REDNESS, id="spreading redness"),
    case("red and spreading", FREE_TEXT, None, REDNESS, id="red and spreading"),
    case("la rougeur s'étend", FREE_TEXT, None, REDNESS, id="rougeur qui s'etend"),
    case("hot to the touch", FREE_TEXT, None, WARMTH, id="hot to the touch"),
    case("red, warm", FREE_TEXT, None, WARMTH, id="red and warm without touch wording"),
    case("4 but the spot is red and hot", SCORE, 4, WARMTH, id="score with a red hot spot"),
    case("c'est rouge et chaud", FREE_TEXT, None, WARMTH, id="rouge et chaud"),
    case("a bit red, nothing else", FREE_TEXT, None, id="redness alone is not a red flag"),
    case("swollen", FREE_TEXT, None, SWELLING, id="swollen"),
    case("some swelling, 4", SCORE, 4, SWELLING, id="swelling with a score"),
    case("c'est enflé", FREE_TEXT, None, SWELLING, id="enfle"),
    case("genou gonflé", FREE_TEXT, None, SWELLING, id="gonfle"),
    case("pus coming out", FREE_TEXT, None, PUS, id="pus"),
    case("one spot is oozing", FREE_TEXT, None, PUS, id="oozing"),
    case("looks infected", FREE_TEXT, None, PUS, id="infected"),
    case("numb", FREE_TEXT, None, NUMB, id="numb"),
    case("tingling in my fingers", FREE_TEXT, None, NUMB, id="tingling counts as numbness"),
    case("main engourdie", FREE_TEXT, None, NUMB, id="engourdie"),
    case("weakness in my arm", FREE_TEXT, None, WEAK, id="weakness"),
    case("can't lift my arm", FREE_TEXT, None, WEAK, id="can't lift my arm"),
    case("faiblesse dans le bras", FREE_TEXT, None, WEAK, id="faiblesse"),
    case("it's getting worse", FREE_TEXT, None, WORSE, id="getting worse"),
    case("10/10 worst ever", SCORE, 10, WORSE, id="10/10 worst ever"),
    case("c'est pire qu'hier", FREE_TEXT, None, WORSE, id="pire qu'hier"),
    case("8, chest tight and short of breath", SCORE, 8, CHEST, BREATH, id="two urgent flags"),
]

NEGATED_RED_FLAGS = [
    case("no fever", FREE_TEXT, id="no fever"),
    case("pas de fièvre", FREE_TEXT, id="pas de fievre"),
    case("no chest pain at all", FREE_TEXT, id="no chest pain at all"),
    case("I don't have a fever", FREE_TEXT, id="don't have a fever"),
    case("no swelling or redness, 2", SCORE, 2, id="no swelling or redness"),
    case("je n'ai pas de difficulté à respirer", FREE_TEXT, id="pas de difficulte a respirer"),
    case("swelling went down", FREE_TEXT, id="swelling went down"),
    case("could be worse", FREE_TEXT, id="could be worse"),
    case("not worse, about a 4", SCORE, 4, id="not worse"),
    case("pas pire", FREE_TEXT, id="pas pire is Quebec for not bad"),
    case("je n'ai plus de fièvre", FREE_TEXT, id="n'ai plus de fievre"),
    case("je ne peux pas respirer", FREE_TEXT, None, BREATH, id="ne peux pas respirer is not a denial"),
    case("je ne sais pas si c'est enflé", FREE_TEXT, None, SWELLING, id="ne sais pas is unsure"),
    case("no fever but chest pain", FREE_TEXT, None, CHEST, id="no fever but chest pain"),
    case("pas de fièvre mais j'ai mal à la poitrine", FREE_TEXT, None, CHEST, id="pas de fievre mais"),
    case("no fever, swollen", FREE_TEXT, None, SWELLING, id="comma ends the negation"),
    case("not sure if it's swelling", FREE_TEXT, None, SWELLING, id="unsure is not a denial"),
]


@pytest.mark.parametrize(
    ("reply", "intent", "score", "flags"),
    CARRIER_KEYWORDS + OPT_OUT_SENTENCES + SCORES + NO_USABLE_SCORE + RED_FLAGS + NEGATED_RED_FLAGS,
)
def test_what_the_clinic_reads_in_the_reply(
    reply: str, intent: ReplyIntent, score: int | None, flags: set[RedFlag]
) -> None:
    parsed = parse_reply(reply)

    assert (parsed.intent, parsed.score, set(parsed.red_flags)) == (intent, score, flags)


def test_a_score_is_given_only_with_the_score_intent() -> None:
    for reply in ["3", "stop", "feeling fine", "15", "no fever but chest pain"]:
        parsed = parse_reply(reply)
        assert (parsed.score is not None) == (parsed.intent is ReplyIntent.SCORE)


def test_an_opt_out_sentence_still_reports_red_flags() -> None:
    parsed = parse_reply("stop texting me, I have chest pain")

    assert parsed == ParsedReply(
        ReplyIntent.OPT_OUT, None, (RedFlag.CHEST_PAIN,), Language.ENGLISH
    )


@pytest.mark.parametrize(
    ("reply", "language"),
    [
        pytest.param("about a 6 today", Language.ENGLISH, id="english"),
        pytest.param("à peu près 5 aujourd'hui", Language.FRENCH, id="french"),
        pytest.param("ARRÊT", Language.FRENCH, id="arret"),
        pytest.param("7", None, id="a bare number says nothing"),
    ],
)
def test_language_hint(reply: str, language: Language | None) -> None:
    assert parse_reply(reply).language_hint == language
