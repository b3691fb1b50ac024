"""B1: wall time of one scheduled run, tick to result recorded in metrics, vs bare Playwright.

Each round runs, in turn, the baseline (launch + sign-in + close in this process) and one
run of each prober mode through the real Scheduler, WorkerRunner and ProberMetrics. A
pause follows every run: it stands for the scheduler's idle interval, which is when a
pool prepares the next worker. The tick is `Scheduler.run_now`, which takes the same
path (`_run_once`) as a scheduled tick.
"""

import argparse
import asyncio
import time
from typing import Any

from playwright.async_api import async_playwright
from prometheus_client import CollectorRegistry

from bench.common import BROWSER, baseline_run, demo_scenario, load, serve_target, summary
from bench.common import write_result as write
from prober.contracts.config import Scenario
from prober.contracts.result import RunResult
from prober.contracts.secrets import Redactor
from prober.record.metrics import ProberMetrics
from prober.record.sinks import Recorder, RunLog
from prober.schedule.scheduler import Scheduler
from prober.settings import (
    DEFAULT_PAGE_TIMING_BUCKETS,
    DEFAULT_SCENARIO_BUCKETS,
    DEFAULT_STEP_BUCKETS,
)
from prober.supervise.browser import DEFAULT_ARGS
from prober.supervise.pool import Prewarm
from prober.supervise.runner import WorkerRunner

# Mode name -> what the pool prepares ahead of the tick (None: no pool, cold start).
MODES: dict[str, Prewarm] = {"cold": "none", "warm-driver": "driver", "warm-browser": "browser"}


class Stamped(Recorder):
    """Records like `prober serve` (without history), and notes when the result reached
    the metrics."""

    def __init__(self, metrics: ProberMetrics) -> None:
        super().__init__([metrics, RunLog()])
        self.recorded_at = 0.0
        self.first = asyncio.Event()

    def run_finished(self, scenario: Scenario, run_id: str, result: RunResult | None) -> None:
        super().run_finished(scenario, run_id, result)
        self.recorded_at = time.monotonic()
        self.first.set()


class Prober:
    """One mode's runner, scheduler and metrics, as `prober serve` wires them."""

    def __init__(self, scenario: Scenario, prewarm: Prewarm) -> None:
        self.runner = WorkerRunner(BROWSER, DEFAULT_ARGS, Redactor(()), prewarm=prewarm)
        self.recorder = Stamped(
            ProberMetrics(
                CollectorRegistry(),
                DEFAULT_SCENARIO_BUCKETS,
                DEFAULT_STEP_BUCKETS,
                DEFAULT_PAGE_TIMING_BUCKETS,
            )
        )
        self.scheduler = Scheduler(self.runner.run, self.recorder, 1, 0.0)
        self.scenario = scenario

    def start(self) -> None:
        # An interval far beyond the benchmark: only our explicit ticks run it.
        self.scheduler.start([self.scenario.model_copy(update={"interval": 3600.0})])
        self.runner.start()

    async def first_run(self) -> None:
        await self.recorder.first.wait()

    async def tick(self) -> tuple[float, RunResult]:
        started = time.monotonic()
        result = await self.scheduler.run_now(self.scenario.name)
        assert result is not None
        return self.recorder.recorded_at - started, result

    async def stop(self) -> None:
        await self.scheduler.stop(5.0)
        await self.runner.close()


async def measure(rounds: int, pause: float, modes: list[str]) -> dict[str, Any]:
    load_before = load()
    async with serve_target() as target, async_playwright() as playwright:
        scenario = demo_scenario(target.url)
        probers = {mode: Prober(scenario, MODES[mode]) for mode in modes}
        for prober in probers.values():
            prober.start()
        # Not measured: the loops' own first runs (start offset 0) and one baseline run
        # warm the OS caches and the site.
        await baseline_run(playwright, target.url)
        for prober in probers.values():
            await prober.first_run()
        await asyncio.sleep(pause)
        times: dict[str, list[float]] = {"baseline": [], **{m: [] for m in modes}}
        failures: dict[str, int] = dict.fromkeys(modes, 0)
        try:
            for round_ in range(rounds):
                times["baseline"].append((await baseline_run(playwright, target.url))["total"])
                await asyncio.sleep(pause)
                # Rotate the order so no mode always follows the baseline.
                order = modes[round_ % len(modes) :] + modes[: round_ % len(modes)]
                for mode in order:
                    elapsed, result = await probers[mode].tick()
                    times[mode].append(elapsed)
                    failures[mode] += not result.ok
                    await asyncio.sleep(pause)
        finally:
            for prober in probers.values():
                await prober.stop()
    base = summary(times["baseline"])
    report: dict[str, Any] = {
        "rounds": rounds,
        "pause_seconds": pause,
        "loadavg_before": load_before,
        "loadavg_after": load(),
        "baseline": base,
        "raw": times,
    }
    for mode in modes:
        stats = summary(times[mode])
        report[mode] = {
            **stats,
            "failed_runs": failures[mode],
            "ratio_median": stats["median"] / base["median"],
            "ratio_mean": stats["mean"] / base["mean"],
        }
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, for a smoke run")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--pause", type=float, default=2.0)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    report = asyncio.run(measure(rounds, args.pause, args.modes.split(",")))
    base = report["baseline"]
    print(f"B1 run cost ({rounds} rounds, load {report['loadavg_before'][0]:.2f})")
    print(f"  baseline       median {base['median']:.3f}s  mean {base['mean']:.3f}s")
    for mode in args.modes.split(","):
        r = report[mode]
        print(
            f"  {mode:<14} median {r['median']:.3f}s  mean {r['mean']:.3f}s  "
            f"ratio {r['ratio_median']:.2f}x (target <= 1.10x)  failed {r['failed_runs']}"
        )
    print(f"  -> {write('b1_run_cost', report)}")
    return report


if __name__ == "__main__":
    main()
