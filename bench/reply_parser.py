"""Benchmark: how long the check-in reply parser takes as a reply grows, on worst-case inputs.

    .venv/bin/python bench/reply_parser.py
    .venv/bin/python bench/reply_parser.py --sizes 1000 2000 16000 64000 --repeat 3

Each input is repeated up to the size: many numbers ("7 7 7 ..."), one long clause full of red-flag
words ("numb numb ..."), long runs of digits and words without spaces, and an ordinary sentence.
Prints the best of `--repeat` runs per input and size, wall and CPU time (the machine may be shared),
with the CPU time per character, so a parser that grows faster than the input shows at once (the time
per character climbs with the size). Also prints,
as the raw limits it is compared with, the note and SMS caps the service applies before parsing.
Not a test: it asserts nothing about speed.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.aftercare.domain.reply_limits import MAX_NOTE_CHARS, MAX_SMS_CHARS
from services.aftercare.domain.reply_parser import parse_reply

WORST_CASES: dict[str, str] = {
    "numbers": "7 ",
    "numbers_with_scale": "7/10 ",
    "red_flag_words": "numb ",
    "negated_red_flags": "no swelling ",
    "red_warm": "red warm ",
    "hedges": "not sure ",
    "digits_no_space": "7",
    "words_no_space": "a",
    "dots": "7.",
    "ordinary": "it is about a 6 today, a bit sore but fine. ",
}


def best_of(repeat: int, run: Callable[[], object]) -> tuple[float, float]:
    """The best wall time and the best CPU time of this process (less disturbed by a busy machine)."""
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return min(wall), min(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000, 16000, 32000, 64000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="names of the inputs to run (default: all)")
    args = parser.parse_args()
    print(f"caps applied before parsing: note {MAX_NOTE_CHARS} chars, SMS body {MAX_SMS_CHARS} chars")
    print(f"{'input':<20}{'chars':>8}{'wall ms':>10}{'cpu ms':>10}{'cpu us/char':>12}")
    for name, unit in WORST_CASES.items():
        if args.only and name not in args.only:
            continue
        for size in args.sizes:
            text = (unit * (size // len(unit) + 1))[:size]
            wall, cpu = best_of(args.repeat, partial(parse_reply, text))
            print(f"{name:<20}{size:>8}{wall * 1000:>10.2f}{cpu * 1000:>10.2f}{cpu * 1e6 / size:>12.3f}")


if __name__ == "__main__":
    main()
