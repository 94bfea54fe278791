"""A service's workers run until it is told to stop; one that ends first takes the service down with it."""
from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from shared.process import Health, Worker, WorkerDied, run_service, supervise


def until_stopped(ended: list[str], name: str) -> Worker:
    async def run(stop: asyncio.Event) -> None:
        await stop.wait()
        ended.append(name)

    return Worker(name, run)


async def test_a_worker_that_returns_before_stop_has_died_and_stops_the_others() -> None:
    ended: list[str] = []

    async def returns_early(stop: asyncio.Event) -> None:
        return None

    health = Health("test")
    stop = asyncio.Event()
    with pytest.raises(WorkerDied, match="dispatcher"):
        await supervise([until_stopped(ended, "consumer"), Worker("dispatcher", returns_early)], stop, health)
    assert not health.ok and health.dead_workers == ["dispatcher"]
    assert stop.is_set() and ended == ["consumer"]


async def test_a_worker_that_raises_has_died_and_stops_the_others() -> None:
    ended: list[str] = []

    async def crashes(stop: asyncio.Event) -> None:
        await asyncio.sleep(0)
        raise ConnectionResetError("database went away")

    health = Health("test")
    with pytest.raises(WorkerDied, match="dispatcher"):
        await supervise([until_stopped(ended, "consumer"), Worker("dispatcher", crashes)], asyncio.Event(), health)
    assert not health.ok and health.dead_workers == ["dispatcher"]
    assert ended == ["consumer"]


async def test_when_told_to_stop_every_worker_ends_and_nothing_is_reported_dead() -> None:
    ended: list[str] = []
    health = Health("test")
    stop = asyncio.Event()
    supervising = asyncio.create_task(
        supervise([until_stopped(ended, "consumer"), until_stopped(ended, "dispatcher")], stop, health)
    )
    await asyncio.sleep(0.01)
    assert not supervising.done()
    stop.set()
    await asyncio.wait_for(supervising, timeout=5)
    assert health.ok and sorted(ended) == ["consumer", "dispatcher"]


async def test_a_worker_still_finishing_its_work_when_told_to_stop_has_not_died() -> None:
    ended: list[str] = []

    async def finishes_in_flight_work(stop: asyncio.Event) -> None:
        await stop.wait()
        await asyncio.sleep(0.01)
        ended.append("dispatcher")

    health = Health("test")
    stop = asyncio.Event()
    supervising = asyncio.create_task(supervise([Worker("dispatcher", finishes_in_flight_work)], stop, health))
    await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(supervising, timeout=5)
    assert health.ok and ended == ["dispatcher"]


async def test_health_is_red_while_the_other_workers_are_still_stopping() -> None:
    health = Health("test")
    seen_while_stopping: list[bool] = []

    async def slow_to_stop(stop: asyncio.Event) -> None:
        await stop.wait()
        seen_while_stopping.append(health.ok)

    async def crashes(stop: asyncio.Event) -> None:
        raise RuntimeError("database gone")

    with pytest.raises(WorkerDied):
        await supervise([Worker("web", slow_to_stop), Worker("dispatcher", crashes)], asyncio.Event(), health)
    assert seen_while_stopping == [False]


@pytest.fixture
def unfrozen_afterwards() -> Iterator[None]:
    """run_service freezes what this test process has loaded: it is given back to the collector after."""
    yield
    gc.unfreeze()


def test_a_service_runs_on_uvloop_to_the_end_of_its_main_coroutine(unfrozen_afterwards: None) -> None:
    async def main() -> str:
        await asyncio.sleep(0.01)
        return type(asyncio.get_running_loop()).__module__

    assert run_service(main()).startswith("uvloop")


def test_what_a_service_loaded_before_it_runs_is_left_out_of_the_collectors_full_passes(
    unfrozen_afterwards: None,
) -> None:
    # Its modules' functions and classes live as long as the process; a full pass over them stalled the
    # event loop for about 100 ms each time.
    async def main() -> tuple[bool, bool]:
        gc.collect()
        made_while_running: list[list[int]] = [[]]
        tracked = {id(obj) for obj in gc.get_objects()}
        return id(run_service) in tracked, id(made_while_running) in tracked

    loaded_tracked, new_tracked = run_service(main())
    assert not loaded_tracked
    assert new_tracked  # what the service makes while it runs is collected as usual
