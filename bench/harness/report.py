"""RESULTS.md, results.json and the latency-vs-load plot from what the benchmarks returned."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def plot(end_to_end: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = end_to_end["rows"]
    loads = [row["offered_per_s"] for row in rows]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for key, label in (("p50_s", "p50"), ("p95_s", "p95"), ("p99_s", "p99")):
        axes.plot(loads, [row[key] if row[key] is not None else float("nan") for row in rows], marker="o",
                  label=label)
    axes.set_xlabel("offered bookings/s")
    axes.set_ylabel("POST → SMTP accept (s)")
    axes.set_yscale("log")
    axes.set_title("End to end latency vs offered load")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    parts = [
        f"# Benchmark results ({results['form']} form)",
        "",
        f"Run {results['started']} with `{results['command']}`, {results['duration_s']:.0f} s in all.",
        "",
        f"Machine: {machine['nproc']} cores ({machine['cpu_model']}), {machine['memory_gib']} GiB memory "
        f"({machine['memory_available_gib']} GiB available), Python {machine['python']}, Linux {machine['kernel']}. "
        f"Load average at start {machine['load_average']}, at the end {results['load_average_end']}: the "
        "machine is shared, and every figure below competes with whatever else ran; each is set next to its raw "
        "limit or peer measured in the same run.",
        "",
    ]
    for name, error in results.get("failed", {}).items():
        parts += [f"**{name} failed** in this run: `{error[:300]}`", ""]
    sections = results["sections"]
    loads = results.get("load_average_by_section", {})

    def under(name: str) -> list[str]:
        return [f"Load average (1, 5, 15 min) when this benchmark started: {loads.get(name)}.", ""]
    if "channels" in sections:
        rows = sections["channels"]["rows"]
        parts += ["## 1. Channels: dispatcher vs raw client, same connections, same sink/sandbox", "",
                  *under("channels"),
                  table(["channel", "connections", "provider latency (s)", "messages", "delivered",
                         "dispatcher (msg/s)", "raw client (msg/s)", "limit (msg/s)", "SMS rate setting",
                         "SMS max in 1 s"],
                        [[r["channel"], r["connections"], r["provider_latency_s"], r["messages"], r["delivered"],
                          r["dispatcher_per_s"], r["raw_client_per_s"], r["theoretical_per_s"],
                          r.get("configured_rate_per_s"), r.get("max_in_1s_window")] for r in rows]),
                  "", "Limit: connections / provider latency (for SMS also the sender rate, whichever is lower). "
                  "The dispatcher's figure includes what the raw client does not do: claim from the ledger, render "
                  "the templates (HTML, text, calendar), record the outcome. The raw Twilio client is not rate "
                  "limited; the dispatcher is, by TWILIO_MESSAGES_PER_SECOND (the last column is the most SMS the "
                  "sandbox received in any 1 s window). The dispatcher runs in the benchmark's process on a SQLite "
                  "ledger, logging warnings only; the sink and the sandbox are processes of their own.", ""]
    if "booking_api" in sections:
        section = sections["booking_api"]
        parts += [f"## 2. Booking API alone: each offered load for {fmt(section['seconds'])} s",
                  "", *under("booking_api"),
                  table(["server", "offered/s", "requests", "accepted", "accepted/s", "p50 (ms)", "p99 (ms)",
                         "statuses"],
                        [[r["server"], r["offered_per_s"], r["requests"], r["accepted"], r["accepted_per_s"],
                          r["p50_ms"], r["p99_ms"], json.dumps(r["statuses"])] for r in section["rows"]]),
                  "", "One uvicorn process each, but the last rows: two booking processes on one PostgreSQL "
                  "database listening on one port (BOOKING_HTTP_SHARED_PORT), one of them relaying the outbox. "
                  "Open-loop load from a separate Python process (aiohttp), latency "
                  "counted from each request's due instant; on 2 cores the generator takes CPU from the server. "
                  f"`wrk` (closed loop, 16 connections) on the trivial endpoint: "
                  f"{fmt(section.get('trivial_wrk_closed_loop_per_s'))} requests/s.", ""]
    if "end_to_end" in sections:
        section = sections["end_to_end"]
        parts += ["## 3. End to end: POST → SMTP accept (booking, broker, notifier, sink as processes)", "",
                  *under("end_to_end"),
                  table(["offered/s", "s", "accepted", "HTTP p99 (ms)", "delivered in window", "p50 (s)",
                         "p95 (s)", "p99 (s)", "lost", "duplicated"],
                        [[r["offered_per_s"], r["seconds"], r["accepted"], r["http_p99_ms"],
                          r["delivered_within_window"], r["p50_s"], r["p95_s"], r["p99_s"], r["lost"],
                          r["duplicated"]] for r in section["rows"]]),
                  "", "![latency vs load](latency_vs_load.png)", "",
                  "Lost: accepted (201) and no confirmation at the sink after the final wait; duplicated: more than "
                  "one confirmation to one booking's address.", ""]
    if "scheduler" in sections:
        section = sections["scheduler"]
        cols = ["pending rows", "COPY rows/s", "due at once", "instances", "drained", "duplicated", "drain (msg/s)",
                "channel raw (msg/s)", "first 1,000 lateness p99 (s)", "one new due-now sent after (s)",
                "notifier RSS first / max (MiB)", "then ingest (events/s)"]

        def line(r: dict[str, Any]) -> list[Any]:
            return [r["rows"], r["insert_rows_per_s"], r["due_at_once"], r["instances"], r["drained"], r["duplicated"],
                    r["drain_per_s"], section["channel_rate_per_s"], r["first_1000_lateness_p99_s"],
                    r["one_new_due_now_sent_after_s"],
                    f"{fmt(r['notifier_rss_mib_first'])} / {fmt(r['notifier_rss_mib_max'])}",
                    r.get("ingest_per_s")]

        parts += ["## 4. Scheduler at scale (PostgreSQL)", "", *under("scheduler"),
                  table(cols, [line(r) for r in section["rows"]]), "",
                  "Notifier instances on one database (the smallest scale):", "",
                  table(cols, [line(r) for r in section["instances"]]), "",
                  f"Channel raw: aiosmtplib over {section['pool_size']} connections (the notifier's SMTP_POOL_SIZE) "
                  "to the same kind of sink, this run. Notifier RSS: every instance's together. Then ingest: "
                  "appointments booked, rescheduled and "
                  f"completed ({fmt(section['rows'][0].get('ingest_events'))} events, patients consenting to email "
                  "and SMS), from their production until the notifiers' group committed the last, on the grown "
                  "ledger, while its dispatcher sends what they make due. The one new message is inserted straight "
                  "into the ledger, "
                  "so it waits for the dispatcher's next look at the ledger when idle (DISPATCH_IDLE_POLL_SECONDS, "
                  "0.5 s by default); one recorded from an event wakes it at once. "
                  "On 2 cores more instances show contention, not speed-up: they share the CPU with PostgreSQL and "
                  "the sink. On more cores the design scales out: the appointments topic's partitions bound the "
                  "consumers, and FOR UPDATE SKIP LOCKED lets dispatchers claim disjoint rows without waiting on "
                  "each other.", ""]
    if "peer" in sections:
        rows = sections["peer"]["rows"]
        parts += ["## 5. A peer, side by side: Celery + Redis with ETA (Twilio's reminder tutorial design)", "",
                  *under("peer"),
                  table(["system", "due at once", "drained", "sent twice or more in the drain", "drain (msg/s)",
                         "worker RSS max (MiB)", "SIGKILL mid-batch: batch", "lost", "duplicated", "settings"],
                        [[r["system"], r["due_at_once"], r["drained"], r.get("sent_twice_in_drain", "–"),
                          r["drain_per_s"], r["worker_rss_mib_max"], r["kill_batch"], r["after_kill"]["lost"],
                          r["after_kill"]["duplicated"], r["settings"]]
                         for r in rows]),
                  "", "Drained: reminders that arrived, each counted once; the drain rate is theirs, from the due "
                  "instant to the last one's first arrival. The same sink and 4 SMTP connections on each side. The "
                  "notifier renders each reminder from the "
                  "clinic's templates (text and HTML); the peer sends a fixed body of similar size (text and HTML "
                  "parts), so rendering is a cost only ours pays. Celery holds ETA tasks "
                  "in the worker's memory until due; on Redis an unacknowledged task is redelivered after the "
                  "visibility timeout, so with acks_late a task that ran but was not acknowledged before the kill "
                  "is sent again; without any kill, so is a task the worker has taken and not yet run when "
                  "the visibility timeout ends (the sent-twice column). The notifier's ledger row holds a claim "
                  "with a 60 s lease: a row in flight at the "
                  "kill is taken up again after the lease, with the same Message-ID (a resend: the duplicated column). "
                  "Lost means not received by the end of the wait after the restart: for the peer, its visibility "
                  "timeout plus at least 60 s; for the notifier (lease 60 s), at least 150 s. A Redis task "
                  "restored later than that would still arrive, later than its due time by minutes.", ""]
    if "ingest" in sections:
        rows = sections["ingest"]["rows"]
        parts += ["## 6. Ingest: each service's consumer vs a raw aiokafka consumer, same records, same run", "",
                  *under("ingest"),
                  table(["service", "workload", "events", "load average at its start", "service (events/s)",
                         "after its first commit (events/s)", "first commit after (s)", "raw aiokafka (events/s)",
                         "share of raw (%)", "after first commit, share of raw (%)"],
                        [[r["service"], r["workload"], r["events"], r["load_average"], r["service_per_s"],
                          r["steady_per_s"], r["first_commit_s"], r["raw_per_s"], 100 * r["share_of_raw"],
                          100 * r["steady_share_of_raw"]] for r in rows]),
                  "", "`bench/ingest.py`: appointments booked, then rescheduled, then completed, a patient each; "
                  "consenting: the patients agreed to email and SMS, so every event records its messages (about 4 "
                  "ledger rows an event for the notifier, check-ins and outbox events for aftercare); silent: they "
                  "agreed to nothing, only states are recorded. Each service runs as deployed (`bootstrap.run`, logs "
                  "at INFO) on a fresh SQLite database, timed from its broker start until its group has committed "
                  "every record, and from its first commit (group joined, a first batch applied) until then; its "
                  "dispatcher's sends are held until then. The raw consumer reads the same records "
                  "right before it and does nothing with them. On a broker of its own.", ""]
    return "\n".join(parts)


def write(results: dict[str, Any], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(json.dumps(results, indent=1, default=str))
    if "end_to_end" in results["sections"]:
        plot(results["sections"]["end_to_end"], directory / "latency_vs_load.png")
    (directory / "RESULTS.md").write_text(markdown(results))
