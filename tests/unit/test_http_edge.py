"""The HTTP edge every service shares: token buckets per client, and bodies read up to a limit."""
from __future__ import annotations

import asyncio

from shared.http_edge import TokenBuckets, announced_too_large, read_at_most, replay


class Clock:
    def __init__(self) -> None:
        self.at = 100.0

    def __call__(self) -> float:
        return self.at


def test_a_client_gets_its_burst_then_is_told_when_to_come_back_and_others_are_not_slowed() -> None:
    clock = Clock()
    buckets = TokenBuckets(per_second=2, burst=3, now=clock)
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") == 0.5
    assert buckets.take("b") == 0
    clock.at += 0.5
    assert buckets.take("a") == 0


def test_refusals_do_not_cost_a_token() -> None:
    clock = Clock()
    buckets = TokenBuckets(per_second=1, burst=1, now=clock)
    assert buckets.take("a") == 0
    assert all(buckets.take("a") > 0 for _ in range(5))
    clock.at += 1
    assert buckets.take("a") == 0


def test_only_the_most_recent_clients_are_remembered() -> None:
    clock = Clock()
    buckets = TokenBuckets(per_second=0.001, burst=1, now=clock, max_clients=2)
    for client in ("a", "b", "c"):
        assert buckets.take(client) == 0
    assert buckets.take("c") > 0 and buckets.take("b") > 0
    assert buckets.take("a") == 0, "the oldest client was forgotten, so it starts full"


def test_a_content_length_over_the_limit_or_not_a_number_is_refused_before_reading() -> None:
    assert announced_too_large({"content-length": "1025"}, 1024)
    assert announced_too_large({"content-length": "12x"}, 1024)
    assert not announced_too_large({"content-length": "1024"}, 1024)
    assert not announced_too_large({}, 1024)


def test_a_streamed_body_is_read_up_to_the_limit_and_no_further() -> None:
    async def scenario(chunks: list[bytes], limit: int) -> tuple[bytes | None, int]:
        queue = [{"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
                 for n, chunk in enumerate(chunks)]
        read = 0

        async def receive() -> dict[str, object]:
            nonlocal read
            read += 1
            return queue.pop(0)

        return await read_at_most(receive, limit), read

    assert asyncio.run(scenario([b"ab", b"cd"], 4)) == (b"abcd", 2)
    assert asyncio.run(scenario([b"abc", b"de", b"f"], 4)) == (None, 2)


def test_the_body_read_is_handed_on_whole_then_the_disconnect() -> None:
    async def scenario() -> list[dict[str, object]]:
        async def receive() -> dict[str, object]:
            return {"type": "http.disconnect"}

        replayed = replay(b"{}", receive)
        return [dict(await replayed()), dict(await replayed())]

    assert asyncio.run(scenario()) == [{"type": "http.request", "body": b"{}", "more_body": False},
                                       {"type": "http.disconnect"}]
