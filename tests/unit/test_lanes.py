"""How far ahead of its provider call a message is claimed (`shared/delivery/lanes.py`)."""
from __future__ import annotations

import pytest

from shared.delivery.lanes import HORIZON_SECONDS, MAX_AHEAD, Lane


async def _measured(calls: int, claim_seconds: float, call_seconds: float) -> Lane:
    lane = Lane(calls)
    for n in range(20):  # the running means settle on the measures
        lane.claimed_now([f"m{n}"], claim_seconds)
        await lane.wait_for_call(f"m{n}")
        lane.call_over(f"m{n}", call_seconds)
        lane.gone(f"m{n}")
    return lane


async def test_against_a_provider_that_answers_in_milliseconds_one_claim_serves_many_messages() -> None:
    # A 1 ms claim in front of 4 ms SMTP conversations: claiming one message at a time made a
    # transaction per message, as costly as the message's own outcome.
    lane = await _measured(calls=1, claim_seconds=0.001, call_seconds=0.004)
    assert lane.ahead() >= HORIZON_SECONDS / 0.004
    assert lane.to_claim() >= 12


async def test_against_a_slow_provider_one_message_waits_behind_each_call() -> None:
    # 300 ms per request: claiming further ahead would only make the claim's check older.
    lane = await _measured(calls=8, claim_seconds=0.002, call_seconds=0.3)
    assert lane.ahead() == 1
    assert lane.to_claim() == 8


async def test_a_claim_slower_than_the_horizon_still_covers_two_claims_of_calls() -> None:
    lane = await _measured(calls=2, claim_seconds=0.1, call_seconds=0.05)
    assert lane.ahead() == 4


@pytest.mark.parametrize("call_seconds", [0.0001, 0.00001])
async def test_never_more_than_max_ahead_per_call(call_seconds: float) -> None:
    lane = await _measured(calls=4, claim_seconds=0.001, call_seconds=call_seconds)
    assert lane.ahead() == MAX_AHEAD
    assert lane.to_claim() == 4 * MAX_AHEAD


async def test_half_of_what_may_wait_is_claimed_at_a_time() -> None:
    lane = await _measured(calls=1, claim_seconds=0.001, call_seconds=0.004)
    wanted = lane.to_claim()
    lane.claimed_now([f"w{n}" for n in range(wanted - wanted // 2 + 1)], 0.001)
    assert lane.to_claim() == 0  # fewer than half of what may wait are missing
    for n in range(2):
        lane.gone(f"w{n}")
    assert lane.to_claim() >= wanted // 2
