"""How the peer benchmark counts a drain (`bench.peer_celery.drain`)."""
from __future__ import annotations

import pytest

from bench.peer_celery import drain


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
