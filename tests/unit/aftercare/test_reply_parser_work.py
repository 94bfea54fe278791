"""The reply parser does work in proportion to the reply, not to its square.

Every regular expression of the parser's modules is replaced, for the test, by one that counts the
characters each call is given to scan (from `pos` to `endpos`, or to where it matched). A linear
parser scans a reply a fixed number of times, plus a bounded window around each number or red-flag
word; one that re-reads the text before each number scans about n²/4 characters. The count stops the
parser as soon as it goes over the budget, so the test ends quickly either way.

What this cannot see is backtracking inside one call; `bench/reply_parser.py` times that.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from services.aftercare.domain import (
    reply_keywords,
    reply_language,
    reply_parser,
    reply_red_flags,
    reply_scores,
    reply_text,
)
from services.aftercare.domain.reply_kinds import RedFlag, ReplyIntent

PARSER_MODULES: tuple[ModuleType, ...] = (
    reply_keywords, reply_language, reply_red_flags, reply_scores, reply_text,
)
SIXTY_FOUR_KB = 64 * 1024
CHARACTERS_SCANNED_PER_CHARACTER = 60  # about 30 passes over the reply today, and room to grow


class OverBudget(AssertionError):
    pass


class Scan:
    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.scanned = 0
        self.calls = 0

    def add(self, characters: int) -> None:
        self.calls += 1
        self.scanned += characters
        if self.scanned > self.budget:
            raise OverBudget(f"scanned {self.scanned:,} characters in {self.calls:,} regex calls, "
                             f"budget {self.budget:,}")


class CountingPattern:
    """A compiled pattern that does the same work and adds the span it scans to `scan`."""

    def __init__(self, pattern: re.Pattern[str], scan: Scan) -> None:
        self.pattern = pattern
        self.scan = scan

    def _count(self, string: str, *args: Any, stops_at: int | None = None) -> None:
        pos: int = args[0] if args else 0
        endpos: int | None = args[1] if len(args) > 1 else None
        end = len(string) if endpos is None else min(endpos, len(string))
        self.scan.add(max(0, (end if stops_at is None else stops_at) - pos))

    def search(self, string: str, *args: Any) -> Any:
        found = self.pattern.search(string, *args)
        self._count(string, *args, stops_at=found.end() if found else None)
        return found

    def match(self, string: str, *args: Any) -> Any:
        found = self.pattern.match(string, *args)
        self._count(string, *args, stops_at=found.end() if found else None)
        return found

    def fullmatch(self, string: str, *args: Any) -> Any:
        self._count(string, *args)
        return self.pattern.fullmatch(string, *args)

    def finditer(self, string: str, *args: Any) -> Any:
        self._count(string, *args)
        return self.pattern.finditer(string, *args)

    def findall(self, string: str, *args: Any) -> Any:
        self._count(string, *args)
        return self.pattern.findall(string, *args)

    def split(self, string: str, *args: Any) -> Any:
        self._count(string)
        return self.pattern.split(string, *args)

    def sub(self, repl: Any, string: str, *args: Any) -> Any:
        self._count(string)
        return self.pattern.sub(repl, string, *args)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Scan]:
    scan = Scan(budget=0)
    for module in PARSER_MODULES:
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                monkeypatch.setattr(module, name, CountingPattern(value, scan))
            elif isinstance(value, dict) and value and all(isinstance(v, re.Pattern) for v in value.values()):
                monkeypatch.setattr(module, name, {k: CountingPattern(v, scan) for k, v in value.items()})
    yield scan


def of_size(unit: str, size: int, tail: str = "") -> str:
    return (unit * (size // len(unit) + 1))[: size - len(tail)] + tail


WORST_CASES = [
    pytest.param("7 ", "", id="a number, over and over"),
    pytest.param("7/10 ", "", id="a score out of ten, over and over"),
    pytest.param("not really 7 ", "", id="negated numbers"),
    pytest.param("no swelling ", "", id="one long clause of negated red flags"),
    pytest.param("red warm ", "", id="red and warm, over and over"),
    pytest.param("7", ">3", id="one long run of digits"),
    pytest.param("!", "a", id="one long run of symbols before a word"),
    pytest.param("a", "", id="one long word"),
]


@pytest.mark.parametrize(("unit", "tail"), WORST_CASES)
def test_a_64_kb_adversarial_reply_is_read_in_a_bounded_number_of_regex_scans(
    counted: Scan, unit: str, tail: str,
) -> None:
    text = of_size(unit, SIXTY_FOUR_KB, tail)
    counted.budget = CHARACTERS_SCANNED_PER_CHARACTER * len(text)

    reply_parser.parse_reply(text)

    assert counted.scanned <= counted.budget


def test_counting_does_not_change_what_is_read(counted: Scan) -> None:
    counted.budget = 10**9

    parsed = reply_parser.parse_reply("It's about a 6 today but the area is red, warm and swollen")

    assert parsed.intent is ReplyIntent.SCORE and parsed.score == 6
    assert set(parsed.red_flags) == {RedFlag.WARMTH, RedFlag.SWELLING}
    assert counted.calls > 0  # the patterns really were counted
