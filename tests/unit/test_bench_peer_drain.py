"""How the peer benchmark counts a drain (`bench.peer_celery.drain`)."""
from __future__ import annotations

import pytest

from bench.peer_celery import after_kill, drain


def test_a_reminder_that_arrives_twice_is_drained_once_and_counted_as_sent_twice() -> None:
    # Celery on Redis redelivers a task still unacknowledged when the visibility timeout ends: in a
    # 100,000-reminder drain 38,164 arrived twice, and the drain counted 138,164 reminders.
    mails = [{"to": ["a@example.com"], "at": 101.0}, {"to": ["b@example.com"], "at": 102.0},
             {"to": ["a@example.com"], "at": 190.0}, {"to": ["c@example.com"], "at": 104.0}]
    counted = drain(mails, started=100.0)
    assert counted["drained"] == 3
    assert counted["sends"] == 4
    assert counted["sent_twice_in_drain"] == 1
    # The rate runs to the last reminder's first arrival, not to a late duplicate.
    assert counted["drain_per_s"] == pytest.approx(3 / 4.0)


def test_nothing_arrived() -> None:
    assert drain([], started=100.0) == {"drained": 0, "sends": 0, "sent_twice_in_drain": 0, "drain_per_s": None}


def test_after_the_kill_a_recipient_with_no_mail_is_lost_and_one_with_two_is_duplicated() -> None:
    mails = [{"to": ["a@example.com"], "at": 1.0}, {"to": ["a@example.com"], "at": 2.0},
             {"to": ["b@example.com"], "at": 3.0}, {"to": ["x@example.com"], "at": 4.0}]
    wanted = ["a@example.com", "b@example.com", "c@example.com"]
    assert after_kill(mails, wanted) == {"lost": 1, "duplicated": 1}
