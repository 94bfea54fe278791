"""Benchmark: small committed transactions per second on SQLite (WAL), synchronous=NORMAL vs FULL.

    .venv/bin/python bench/sqlite_durability.py --commits 2000

Each commit inserts one ledger-sized row, as a consumer does per event. FULL syncs the WAL at every
commit (a commit survives a power loss); NORMAL syncs only at checkpoints. Prints, asserts nothing.
"""
from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path


def commits_per_second(path: Path, synchronous: str, commits: int) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    body = "x" * 600
    started = time.perf_counter()
    for _ in range(commits):
        connection.execute("BEGIN")
        connection.execute("INSERT INTO rows (body) VALUES (?)", (body,))
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return commits / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=None, help="where the database files go (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        results = {}
        for mode in ("NORMAL", "FULL"):
            results[mode] = commits_per_second(Path(directory) / f"{mode.lower()}.db", mode, args.commits)
            print(f"synchronous={mode:<6} {results[mode]:10.0f} commits/s ({args.commits} commits)")
        print(f"FULL / NORMAL = {results['FULL'] / results['NORMAL']:.2f}")


if __name__ == "__main__":
    main()
