"""B10: CPU of one `prober run` as a whole process vs the bare one-shot script, paired.

Each round runs, in an order that rotates from round to round, the bare one-shot
(bench.bare_oneshot: one Python process, Playwright async API, driver started, Chromium
launched with prober's flags, a fresh context and page, the demo sign-in, close) and
`prober run --config <bundled demo file> demo-sign-in` (the CLI parent, one worker
subprocess, its driver and Chromium; no PROBER_DATA_DIR, as a one-shot in CI is run).
With `--before DIR` a third command runs the same `prober run` from another checkout
(e.g. `git worktree add /tmp/before <older commit>`), so a change is measured before and
after in the same run against the same baseline.

Every command runs under bench.reaper, a child subreaper, so the helpers a closed
Chromium orphans are reaped inside the measured tree; its CPU is this process's
reaped-children CPU (user + system) across the command. The target site runs in a
thread of this process, outside every measured tree. Figures: per command the median
CPU and wall time, and the median of the per-round ratios against the bare one-shot.
"""

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

from bench.common import BROWSER, load, serve_target, summary, write_result
from bench.signin import PASSWORD, USER
from prober.supervise.browser import DEFAULT_ARGS

TARGET = 1.3
REAPER = (sys.executable, "-m", "bench.reaper")
DEMO_FILE = Path(str(resources.files("prober.demo") / "scenarios.yaml"))


Command = tuple[list[str], dict[str, str], str]


def commands(url: str, before: Path | None) -> dict[str, Command]:
    """name -> (argv, environment, working directory) of each command measured.

    The directory matters as much as PYTHONPATH: `python -m` puts it first on the path.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PROBER_", "OTEL_")) and k != "PYTHONPATH"
    }
    env.update(DEMO_URL=url, DEMO_USER=USER, DEMO_PASSWORD=PASSWORD, PROBER_BROWSER_PATH=BROWSER)
    here = str(Path(__file__).resolve().parents[1])
    run = [*REAPER, sys.executable, "-m", "prober", "run", "--config", str(DEMO_FILE)]
    found = {
        "bare": (
            [*REAPER, sys.executable, "-m", "bench.bare_oneshot", url, BROWSER, *DEFAULT_ARGS],
            {**env, "PYTHONPATH": here},
            here,
        ),
        "prober": ([*run, "demo-sign-in"], {**env, "PYTHONPATH": here}, here),
    }
    if before is not None:
        # First on the path: it wins over this checkout's editable install, and the
        # worker imports the prober its parent runs (prober.supervise.processes).
        found["before"] = (
            [*run, "demo-sign-in"],
            {**env, "PYTHONPATH": str(before)},
            str(before),
        )
    return found


def measure_one(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """(CPU seconds of the whole tree, wall seconds) of one command; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(
            f"B10: {' '.join(argv[3:6])} exited {done.returncode}: {done.stderr[-2000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def measure(rounds: int, before: Path | None) -> dict[str, Any]:
    ready = threading.Event()
    stop = threading.Event()
    url: list[str] = []

    # The target in a thread of this process: its CPU is in no measured tree.
    async def target() -> None:
        async with serve_target() as t:
            url.append(t.url)
            ready.set()
            while not stop.is_set():  # noqa: ASYNC110  (a threading.Event, set by measure)
                await asyncio.sleep(0.2)

    thread = threading.Thread(target=lambda: asyncio.run(target()), daemon=True)
    thread.start()
    ready.wait()
    load_before = load()
    try:
        measured = commands(url[0], before)
        names = list(measured)
        for name in names:  # warm-up (page cache, compiled bytecode), not counted
            measure_one(*measured[name])
        cpu: dict[str, list[float]] = {name: [] for name in names}
        wall: dict[str, list[float]] = {name: [] for name in names}
        for round_ in range(rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                c, w = measure_one(*measured[name])
                cpu[name].append(c)
                wall[name].append(w)
    finally:
        stop.set()
        thread.join()
    report: dict[str, Any] = {
        "rounds": rounds,
        "loadavg_before": load_before,
        "loadavg_after": load(),
        "raw_cpu": cpu,
        "raw_wall": wall,
    }
    for name in names:
        report[name] = {"cpu": summary(cpu[name]), "wall": summary(wall[name])}
        if name != "bare":
            ratios = [a / b for a, b in zip(cpu[name], cpu["bare"], strict=True)]
            report[name]["cpu_ratio"] = summary(ratios)
            report[name]["wall_ratio"] = summary(
                [a / b for a, b in zip(wall[name], wall["bare"], strict=True)]
            )
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 rounds, for a smoke run")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--before", type=Path, help="a checkout of earlier code to measure as well")
    args = parser.parse_args(argv)
    rounds = 4 if args.quick else args.rounds
    report = measure(rounds, args.before)
    loads = f"load {report['loadavg_before'][0]:.2f} -> {report['loadavg_after'][0]:.2f}"
    print(f"B10 one-shot `prober run` vs bare one-shot, whole tree ({rounds} rounds, {loads})")
    bare = report["bare"]
    print(
        f"  bare     CPU median {bare['cpu']['median']:.2f} s, wall {bare['wall']['median']:.2f} s"
    )
    for name in ("before", "prober"):
        if name not in report:
            continue
        r = report[name]
        ratio = r["cpu_ratio"]["median"]
        verdict = "met" if ratio <= TARGET else "missed"
        print(
            f"  {name:<8} CPU median {r['cpu']['median']:.2f} s = {ratio:.2f}x bare"
            f" (paired, range {r['cpu_ratio']['min']:.2f}-{r['cpu_ratio']['max']:.2f};"
            f" {verdict} <= {TARGET}x), wall {r['wall']['median']:.2f} s"
            f" = {r['wall_ratio']['median']:.2f}x"
        )
    if "before" in report:
        after, earlier = report["raw_cpu"]["prober"], report["raw_cpu"]["before"]
        saved = statistics.median(b - a for a, b in zip(after, earlier, strict=True))
        print(f"  saved per run (median of paired before - after): {saved:.2f} CPU-s")
    print(f"  -> {write_result('b10_oneshot', report)}")
    return report


if __name__ == "__main__":
    main()
