"""Run every benchmark in turn: `python -m bench.run_all [--quick]` from the repository root.

Full mode takes about 12 minutes on 2 cores; `--quick` is a smoke run of a few minutes.
Each benchmark prints its figures and writes bench/results/<name>.json.
"""

import argparse
import time

from bench import (
    b1_run_cost,
    b2_accuracy,
    b3_schedule,
    b4_memory,
    b5_scale,
    b7_capacity,
    b9_traces,
    b10_oneshot,
)
from bench.common import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds; a smoke run")
    args = parser.parse_args()
    flags = ["--quick"] if args.quick else []
    print("machine:", machine())
    started = time.monotonic()
    for bench in (
        b1_run_cost,
        b2_accuracy,
        b3_schedule,
        b4_memory,
        b5_scale,
        b7_capacity,
        b9_traces,
        b10_oneshot,
    ):
        began = time.monotonic()
        bench.main(flags)
        print(f"  ({time.monotonic() - began:.0f} s)\n")
    print(f"all benchmarks: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
