"""B5: /metrics under a big registry, and sign-in runs per minute at concurrency 1, 2, 3.

Scrapes: a ProberMetrics registry filled with 100 scenarios x 10 steps (several results
each), served by the real aiohttp app, scraped over HTTP; baseline: the same server with
an empty registry, scrapes interleaved. Throughput: C scenarios with a tiny interval
and PROBER_MAX_CONCURRENCY=C keep C runs going for a fixed window; baseline: C bare
Playwright loops (fresh browser per run) in one process for the same window.
"""

import argparse
import asyncio
import random
import time
from typing import Any

import aiohttp
from aiohttp import web
from playwright.async_api import Playwright, async_playwright
from prometheus_client import CollectorRegistry, generate_latest

from bench.common import BROWSER, baseline_run, demo_scenario, load, serve_target, summary
from bench.common import write_result as write
from prober.contracts.config import Scenario
from prober.contracts.result import Outcome, Reason, RunResult, StepResult
from prober.contracts.secrets import Redactor
from prober.http.server import Health, make_app
from prober.record.metrics import ProberMetrics
from prober.schedule.scheduler import Scheduler
from prober.settings import (
    DEFAULT_PAGE_TIMING_BUCKETS,
    DEFAULT_SCENARIO_BUCKETS,
    DEFAULT_STEP_BUCKETS,
)
from prober.supervise.browser import DEFAULT_ARGS
from prober.supervise.runner import WorkerRunner


def filled_registry(
    scenarios: int, steps: int, runs: int
) -> tuple[CollectorRegistry, ProberMetrics]:
    registry = CollectorRegistry()
    metrics = ProberMetrics(
        registry, DEFAULT_SCENARIO_BUCKETS, DEFAULT_STEP_BUCKETS, DEFAULT_PAGE_TIMING_BUCKETS
    )
    rng = random.Random(5)
    for s in range(scenarios):
        name = f"scenario-{s:03d}"
        for run in range(runs):
            failed = run % 5 == 4
            step_results = tuple(
                StepResult(f"step_{i:02d}", rng.uniform(0.02, 3), not (failed and i == steps - 1))
                for i in range(steps)
            )
            metrics.record(
                RunResult(
                    scenario=name,
                    run_id=f"r{run}",
                    result=Outcome.FAILURE if failed else Outcome.SUCCESS,
                    duration_seconds=sum(x.duration_seconds for x in step_results),
                    started_at=time.time(),
                    steps=step_results,
                    failed_step=f"step_{steps - 1:02d}" if failed else None,
                    reason=Reason.SELECTOR if failed else None,
                ),
                ended_at=time.time(),
            )
    return registry, metrics


async def serve_registry(
    registry: CollectorRegistry, metrics: ProberMetrics | None
) -> tuple[web.AppRunner, str]:
    """Served as `prober serve` does: the metrics tell the /metrics cache when to re-render."""
    health = Health(alive=lambda: True, browser_problem=lambda: None)
    app = make_app(registry, health, metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/metrics"


async def scrapes(count: int) -> dict[str, Any]:
    registry, metrics = filled_registry(100, 10, 5)
    full_runner, full_url = await serve_registry(registry, metrics)
    empty_runner, empty_url = await serve_registry(CollectorRegistry(), None)
    times: dict[str, list[float]] = {"full": [], "empty": []}
    size = 0
    try:
        async with aiohttp.ClientSession() as session:
            for index in range(count):
                # As in production, runs finish between scrapes: every 5th scrape comes
                # 0.3 s after a change (time for the background re-render), and every
                # 10th right after one (rendered on demand, in a thread).
                if index % 5 == 0:
                    metrics.run_started("scenario_000", "r1")
                    await asyncio.sleep(0.3 if index % 10 else 0)
                for name, url in (("empty", empty_url), ("full", full_url)):
                    started = time.perf_counter()
                    async with session.get(url) as response:
                        body = await response.read()
                    times[name].append(time.perf_counter() - started)
                    if name == "full":
                        size = len(body)
    finally:
        await full_runner.cleanup()
        await empty_runner.cleanup()
    # Where the time goes: rendering the text exposition, without HTTP.
    registry, _ = filled_registry(100, 10, 5)
    renders = []
    for _ in range(min(count, 50)):
        started = time.perf_counter()
        generate_latest(registry)
        renders.append(time.perf_counter() - started)
    full, empty = summary(times["full"]), summary(times["empty"])
    return {
        "scrapes": count,
        "body_bytes": size,
        "series": sum(1 for line in body.decode().splitlines() if not line.startswith("#")),
        "full_ms": {k: v * 1000 if k != "n" else v for k, v in full.items()},
        "empty_ms": {k: v * 1000 if k != "n" else v for k, v in empty.items()},
        "ratio_p99": full["p99"] / empty["p99"],
        "generate_latest_ms": {k: v * 1000 if k != "n" else v for k, v in summary(renders).items()},
    }


class Counter:
    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0

    def run_started(self, scenario: Scenario, run_id: str) -> None:
        pass

    def run_finished(self, scenario: Scenario, run_id: str, result: RunResult | None) -> None:
        if result is not None and result.ok:
            self.ok += 1
        elif result is not None:
            self.failed += 1


async def prober_window(scenario: Scenario, concurrency: int, window: float) -> dict[str, int]:
    """Runs that *finished* within the window, with the scheduler keeping C runs going."""
    runner = WorkerRunner(
        BROWSER, DEFAULT_ARGS, Redactor(()), prewarm="browser", pool_size=concurrency
    )
    counter = Counter()
    scheduler = Scheduler(runner.run, counter, concurrency, 0.0)
    copies = [
        scenario.model_copy(update={"name": f"sign-in-{i}", "interval": 0.01})
        for i in range(concurrency)
    ]
    runner.start()
    await asyncio.sleep(5.0)  # steady state: the pool's first workers are up
    scheduler.start(copies)
    await asyncio.sleep(window)
    ok, failed = counter.ok, counter.failed
    scheduler.cancel_runs()
    await scheduler.stop(0.0)
    await runner.close()
    return {"ok": ok, "failed": failed}


async def baseline_window(
    playwright: Playwright, url: str, concurrency: int, window: float
) -> dict[str, int]:
    end = time.monotonic() + window
    done = {"ok": 0, "failed": 0}

    async def loop() -> None:
        while True:
            await baseline_run(playwright, url)
            if time.monotonic() > end:
                return
            done["ok"] += 1

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return done


async def throughput(levels: list[int], window: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with serve_target() as target, async_playwright() as playwright:
        scenario = demo_scenario(target.url)
        for c in levels:
            base = await baseline_window(playwright, target.url, c, window)
            prober = await prober_window(scenario, c, window)
            results[str(c)] = {
                "window_seconds": window,
                "prober_runs_per_minute": prober["ok"] * 60 / window,
                "prober_failed": prober["failed"],
                "baseline_runs_per_minute": base["ok"] * 60 / window,
                "ratio": (prober["ok"] / base["ok"]) if base["ok"] else None,
                "loadavg": load(),
            }
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--window", type=float, default=40.0)
    args = parser.parse_args(argv)
    count, window = (50, 15.0) if args.quick else (200, args.window)
    load_before = load()
    report: dict[str, Any] = {
        "loadavg_before": load_before,
        "metrics": asyncio.run(scrapes(count)),
        "throughput": asyncio.run(throughput([1, 2, 3], window)),
        "loadavg_after": load(),
    }
    m = report["metrics"]
    print(f"B5 scale (load {load_before[0]:.2f})")
    print(
        f"  /metrics, 100 scenarios x 10 steps ({m['series']} series, {m['body_bytes']} bytes): "
        f"p50 {m['full_ms']['median']:.2f} ms  p99 {m['full_ms']['p99']:.2f} ms "
        f"(target <= 10 ms); empty registry p99 {m['empty_ms']['p99']:.2f} ms; "
        f"generate_latest alone p50 {m['generate_latest_ms']['median']:.1f} ms"
    )
    for c, r in report["throughput"].items():
        print(
            f"  concurrency {c}: {r['prober_runs_per_minute']:.0f} runs/min "
            f"(failed {r['prober_failed']}), baseline {r['baseline_runs_per_minute']:.0f}, "
            f"ratio {r['ratio'] or 0:.2f}x"
        )
    print(f"  -> {write('b5_scale', report)}")
    return report


if __name__ == "__main__":
    main()
