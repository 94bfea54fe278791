"""Chaos runs: a fresh system and broker per scenario, figures written at the end."""
from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from shared.kafka_admin import ensure_topics
from tests.chaos import report
from tests.chaos.harness import ChaosSystem, Scale, current_scale, run_async, start_system
from tests.support.kafka_server import KafkaServer, start_kafka

_figures: list[report.ScenarioFigures] = []


@pytest.fixture
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    """A broker of each scenario's own: the services' new consumer groups read the topics from the
    start, so thousands of bookings and malformed records left by one scenario (or by the session's
    other tests) would be work queued ahead of the next scenario's."""
    server = start_kafka(tmp_path_factory.mktemp("chaos-kafka"))
    try:
        run_async(ensure_topics(server.bootstrap_servers))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def scale() -> Scale:
    return current_scale()


@pytest.fixture
def record_figures(scale: Scale) -> Callable[[report.ScenarioFigures], None]:
    return _figures.append


@pytest.fixture
def chaos_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A directory of the test's own, outside pytest's basetemp: a concurrent pytest session on the same
    machine prunes older basetemps, which would delete a running service's SQLite database. Kept when
    the test fails (databases and logs), removed otherwise."""
    path = Path(tempfile.mkdtemp(prefix="clinic-notify-chaos-"))
    path.chmod(0o755)  # postgres.sh runs the server as its own user, which must reach its data dir
    yield path
    outcome = getattr(request.node, "rep_call", None)
    if outcome is not None and outcome.failed:
        print(f"chaos: databases and logs kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def chaos_system(request: pytest.FixtureRequest, chaos_dir: Path) -> Iterator[Callable[..., ChaosSystem]]:
    """start(bootstrap, **env overrides) -> a running system, stopped after the test (logs shown on failure)."""
    tmp_path = chaos_dir
    started: list[ChaosSystem] = []

    def start(bootstrap: str, *, notifiers: int = 1, **overrides: str) -> ChaosSystem:
        path = tmp_path / f"system-{len(started)}"
        path.mkdir()
        system = start_system(bootstrap, path, notifiers=notifiers, **overrides)
        started.append(system)
        return system

    yield start
    report_ = getattr(request.node, "rep_call", None)
    for system in started:
        if report_ is not None and report_.failed:
            print(system.log_tails())
        system.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    outcome = yield
    setattr(item, f"rep_{outcome.when}", outcome)
    return outcome


def pytest_sessionfinish(session: pytest.Session) -> None:
    scale = current_scale().name
    # In a worker process of pytest-xdist, the command line is the one the run was started with.
    # deploy/test.sh puts its own "-n N --dist loadfile" first: the arguments it was given follow.
    args = list(getattr(session.config, "workerinput", {}).get("mainargv", sys.argv)[1:])
    if args[:1] == ["-n"] and args[2:4] == ["--dist", "loadfile"]:
        args = args[4:]
    command = " ".join([f"CHAOS_SCALE={scale}", "bash deploy/test.sh", *(shlex.quote(arg) for arg in args)])
    report.write(scale, _figures, command)
