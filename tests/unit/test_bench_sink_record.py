"""The benchmarks' view of what the SMTP sink process accepted (`bench.harness.stack.SinkProcess`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from bench.harness import stack
from bench.harness.stack import Process, SinkProcess


def _sink(tmp_path: Path) -> SinkProcess:
    record = tmp_path / "sink.jsonl"
    record.write_text("")
    return SinkProcess(cast(Process, None), 0, record)


def _append(sink: SinkProcess, text: str) -> None:
    with sink.record.open("a") as handle:
        handle.write(text)


def _line(n: int) -> str:
    return json.dumps({"to": [f"p{n}@example.com"], "at": float(n)}) + "\n"


def test_mails_are_read_as_the_sink_appends_them_a_line_being_written_waits(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    _append(sink, _line(1) + _line(2)[:10])
    assert [m["to"] for m in sink.mails()] == [["p1@example.com"]]
    _append(sink, _line(2)[10:] + _line(3))
    assert [m["to"] for m in sink.mails()] == [["p1@example.com"], ["p2@example.com"], ["p3@example.com"]]
    sink.forget()
    assert sink.mails() == []
    _append(sink, _line(4))
    assert [m["to"] for m in sink.mails()] == [["p4@example.com"]]


def test_polling_during_a_long_drain_reads_only_what_arrived_since_the_last_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A wait polls this while 100,000 mails arrive, on the cores the systems measured run on:
    # parsing every mail again at each poll took a core from them.
    sink = _sink(tmp_path)
    _append(sink, "".join(_line(n) for n in range(1000)))
    assert len(sink.mails()) == 1000
    parsed = []
    loads = json.loads

    def counting_loads(text: Any) -> Any:
        parsed.append(text)
        return loads(text)

    monkeypatch.setattr(stack.json, "loads", counting_loads)
    _append(sink, _line(1000))
    assert len(sink.mails()) == 1001
    assert len(parsed) == 1
