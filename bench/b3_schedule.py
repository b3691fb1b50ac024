"""B3: does the scheduler start each run `interval` after the previous one ended?

Error = start(n+1) - end(n) - interval, from the observer's run_started/run_finished
(the same hooks that drive metrics). A fake runner (sleeps 0-20 ms) gives many runs
quickly; a few real runs check the same with workers and browsers in the loop. The
baseline is a bare `asyncio.sleep(interval)` loop in the same process: what the event
loop alone adds on this machine right now.
"""

import argparse
import asyncio
import random
import time
from typing import Any

from bench.common import BROWSER, demo_scenario, load, pct, serve_target, summary, write_result
from prober.contracts.config import Scenario
from prober.contracts.result import Outcome, RunResult
from prober.contracts.secrets import Redactor
from prober.schedule.scheduler import RunFunction, Scheduler
from prober.supervise.browser import DEFAULT_ARGS
from prober.supervise.runner import WorkerRunner


class Timeline:
    """Observer noting when each run started and ended."""

    def __init__(self, wanted: int) -> None:
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.wanted = wanted
        self.done = asyncio.Event()
        self.running = 0
        self.overlaps = 0

    def run_started(self, scenario: Scenario, run_id: str) -> None:
        self.starts.append(time.monotonic())
        self.running += 1
        self.overlaps += self.running > 1

    def run_finished(self, scenario: Scenario, run_id: str, result: RunResult | None) -> None:
        self.ends.append(time.monotonic())
        self.running -= 1
        if len(self.ends) >= self.wanted:
            self.done.set()

    def errors(self, interval: float) -> list[float]:
        return [s - e - interval for s, e in zip(self.starts[1:], self.ends, strict=False)]


async def fake_run(scenario: Scenario, run_id: str) -> RunResult:
    started = time.time()
    await asyncio.sleep(random.uniform(0, 0.02))
    return RunResult(scenario.name, run_id, Outcome.SUCCESS, time.time() - started, started)


async def schedule(run: RunFunction, scenario: Scenario, runs: int) -> Timeline:
    timeline = Timeline(runs)
    scheduler = Scheduler(run, timeline, 1, 0.0)
    scheduler.start([scenario])
    await timeline.done.wait()
    await scheduler.stop(30.0)
    return timeline


async def bare_sleeps(interval: float, runs: int) -> list[float]:
    errors = []
    for _ in range(runs):
        before = time.monotonic()
        await asyncio.sleep(interval)
        errors.append(time.monotonic() - before - interval)
    return errors


def stats(errors: list[float]) -> dict[str, float]:
    return {**summary(errors), "p50_ms": pct(errors, 50) * 1000, "p99_ms": pct(errors, 99) * 1000}


async def measure(fake_runs: int, real_runs: int) -> dict[str, Any]:
    load_before = load()
    async with serve_target() as target:
        scenario = demo_scenario(target.url)
        fast = scenario.model_copy(update={"interval": 0.05})
        fake = await schedule(fake_run, fast, fake_runs)
        baseline = await bare_sleeps(0.05, fake_runs)
        real_scenario = scenario.model_copy(update={"interval": 1.0})
        runner = WorkerRunner(BROWSER, DEFAULT_ARGS, Redactor(()), prewarm="browser")
        runner.start()
        try:
            real = await schedule(runner.run, real_scenario, real_runs)
        finally:
            await runner.close()
    return {
        "loadavg_before": load_before,
        "loadavg_after": load(),
        "fake": {
            "runs": len(fake.ends),
            "interval": 0.05,
            "overlaps": fake.overlaps,
            **stats(fake.errors(0.05)),
        },
        "baseline_sleep": {"interval": 0.05, **stats(baseline)},
        "real": {
            "runs": len(real.ends),
            "interval": 1.0,
            "overlaps": real.overlaps,
            **stats(real.errors(1.0)),
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    fake_runs, real_runs = (50, 3) if args.quick else (200, 10)
    report = asyncio.run(measure(fake_runs, real_runs))
    print(f"B3 schedule (load {report['loadavg_before'][0]:.2f})")
    for name in ("fake", "baseline_sleep", "real"):
        r = report[name]
        print(
            f"  {name:<15} n={r['n']:<4} error p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms"
            + (f"  overlaps {r['overlaps']} (target 0)" if "overlaps" in r else "")
        )
    print("  target: p99 <= 50 ms")
    print(f"  -> {write_result('b3_schedule', report)}")
    return report


if __name__ == "__main__":
    main()
