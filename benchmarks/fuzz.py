"""``python -m benchmarks.fuzz``: the codec fuzz properties of tests/unit/test_fuzz_codec.py, run for longer.

CI runs 2,400 derandomized examples (the same ones every time); this runs as many fresh random ones as asked,
split over the properties in CI's proportions, in rounds of at most ``--round`` examples (a fresh hypothesis
run each, so progress shows and memory stays flat), and prints how many ran and how fast. A failure stops the
run with hypothesis's minimal example and the ``@reproduce_failure`` blob to paste above the test.

    .venv/bin/python -m benchmarks.fuzz --examples 100000 [--property mutated_records] [--seed 7]

~135 examples per CPU second on this machine (hypothesis's own generation is most of it), so 100,000 take
~12 minutes of one core; 30,000 (seed 12) ran without failure in 222 CPU seconds.
"""

from __future__ import annotations

import argparse
import sys
import time

from tests.unit.test_fuzz_codec import CI_EXAMPLES, run_property


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000, help="examples in all (100000)")
    parser.add_argument("--round", type=int, default=5_000, help="examples per hypothesis run (5000)")
    parser.add_argument("--property", choices=sorted(CI_EXAMPLES), action="append", help="only these (repeatable)")
    parser.add_argument("--seed", type=int, default=None, help="a reproducible random run (default: fresh)")
    args = parser.parse_args(argv)
    names = args.property or list(CI_EXAMPLES)
    weight = sum(CI_EXAMPLES[name] for name in names)
    total, began = 0, time.perf_counter()
    for name in names:
        wanted = max(1, args.examples * CI_EXAMPLES[name] // weight)
        count, start, cpu = 0, time.perf_counter(), time.process_time()
        for number, size in enumerate(_rounds(wanted, args.round)):
            seed = None if args.seed is None else args.seed * 1_000 + number
            count += run_property(name, "long", size, seed=seed)
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
            print(f"{name}: {count:,} of {wanted:,} examples, {seconds:,.0f} s, {cpu_seconds:,.0f} CPU s", flush=True)
        total += count
    print(f"total: {total:,} examples in {time.perf_counter() - began:,.0f} s, no failure")
    return 0


def _rounds(examples: int, size: int) -> list[int]:
    return [size] * (examples // size) + ([examples % size] if examples % size else [])


if __name__ == "__main__":
    sys.exit(main())
