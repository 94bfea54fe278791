"""Replays started from the console: each runs in the background; its page refreshes until it is done."""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka.errors import KafkaError

from cli.dead_letter_replay import ReplayReport, Selection, replay
from shared.observability import get_logger

log = get_logger(__name__)
KEPT = 50  # finished replays kept for their pages


@dataclass
class ReplayJob:
    id: str
    topic: str
    selection: Selection
    started_at: datetime
    done: int = 0
    total: int | None = None
    finished: bool = False
    report: ReplayReport | None = None
    error: str | None = None


@dataclass
class Replays:
    bootstrap_servers: str
    jobs: dict[str, ReplayJob] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def start(self, topic: str, selection: Selection) -> ReplayJob:
        job = ReplayJob(uuid.uuid4().hex[:12], topic, selection, datetime.now(UTC))
        self.jobs[job.id] = job
        for old in list(self.jobs.values())[:-KEPT]:
            if old.finished:
                del self.jobs[old.id]
        task = asyncio.create_task(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: ReplayJob) -> None:
        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        try:
            job.report = await replay(self.bootstrap_servers, job.topic, job.selection, by="console",
                                      on_progress=progress)
            log.info("dead_letters_replayed", topic=job.topic, replayed=len(job.report.replayed),
                     already=len(job.report.already))
        except (KafkaError, OSError, TimeoutError, LookupError, RuntimeError) as error:
            job.error = f"{type(error).__name__}: {error}"
            log.warning("dead_letter_replay_failed", topic=job.topic, error=type(error).__name__)
        finally:
            job.finished = True

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
