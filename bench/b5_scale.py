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
from collections.abc import Callable, Hashable
from typing import Any

import aiohttp
from aiohttp import web
from playwright.async_api import Playwright, async_playwright
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from bench.common import BROWSER, baseline_run, demo_scenario, load, serve_target, summary
from bench.common import write_result as write
from prober.contracts.config import Scenario
from prober.contracts.result import Outcome, Reason, RunResult, StepResult
from prober.contracts.secrets import Redactor
from prober.http.exposition import Sections, Splicer
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


class WholeRegistry:
    """Baseline: the previous cache, one section holding the whole registry, so every
    change renders all of it again (in a thread, as before)."""

    def __init__(self, registry: CollectorRegistry, metrics: ProberMetrics) -> None:
        self._registry = registry
        self._metrics = metrics
        self._version = 0
        metrics.subscribe(self._changed)  # before the exposition's: the version moves first

    def _changed(self) -> None:
        self._version += 1

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._metrics.subscribe(listener)

    def sections(self) -> list[tuple[Hashable, int, CollectorRegistry]]:
        return [("whole", self._version, self._registry)]


async def serve_registry(
    registry: CollectorRegistry, sections: Sections | None
) -> tuple[web.AppRunner, str]:
    """Served as `prober serve` does: the sections feed the /metrics cache."""
    health = Health(alive=lambda: True, browser_problem=lambda: None)
    app = make_app(registry, health, sections)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/metrics"


def a_run_ends(metrics: ProberMetrics, index: int) -> None:
    """What changes the samples in production: one scenario's run starts, then ends."""
    rng = random.Random(index)
    scenario = f"scenario-{index % 100:03d}"
    steps = tuple(StepResult(f"step_{i:02d}", rng.uniform(0.02, 3), True) for i in range(10))
    metrics.run_started(scenario, f"b{index}")
    result = RunResult(
        scenario=scenario,
        run_id=f"b{index}",
        result=Outcome.SUCCESS,
        duration_seconds=sum(x.duration_seconds for x in steps),
        started_at=time.time(),
        steps=steps,
    )
    metrics.run_ended(scenario, f"b{index}", result, time.time())


# What Prometheus sends by default: it prefers OpenMetrics (and so gets exemplars).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
FORMATS = {"text": "text/plain;version=0.0.4", "openmetrics": PROMETHEUS_ACCEPT}


async def scrape_block(
    session: aiohttp.ClientSession,
    metrics: ProberMetrics,
    urls: dict[str, str],
    accept: str,
    indices: range,
    times: dict[str, list[float]],
) -> int:
    """Scrape `urls` in turn (gzip, as Prometheus asks), with a run ending now and then."""
    size = 0
    headers = {"Accept": accept, "Accept-Encoding": "gzip"}
    for index in indices:
        # As in production, runs end between scrapes: every 5th scrape comes 0.3 s after
        # one (time for the background re-render), and every 10th right after one (the
        # cached body, while the re-render runs).
        if index % 5 == 0:
            a_run_ends(metrics, index)
            await asyncio.sleep(0.3 if index % 10 else 0)
        for label, url in urls.items():
            started = time.perf_counter()
            async with session.get(url, headers=headers) as response:
                body = await response.read()
            times[label].append(time.perf_counter() - started)
            size = len(body)
    return size


async def scrapes(count: int) -> dict[str, Any]:
    """Sectioned cache (today) against the whole-registry cache (before) and an empty
    registry, `count` scrapes each per format, in alternating blocks of the same run.
    Each server has its own registry, fresh per format (a cache re-renders every format
    it was asked for), and only the one being scraped sees changes; the pause between
    blocks lets the whole registry's last re-render finish before the other is measured."""
    times: dict[str, list[float]] = {
        f"{s}_{f}": [] for s in ("sectioned", "whole", "empty") for f in FORMATS
    }
    load_before = load()
    first_ms: dict[str, float] = {}
    sizes: dict[str, int] = {}
    block = max(10, -(-count // 4))  # four blocks per strategy and format
    for fmt, accept in FORMATS.items():
        registry, metrics = filled_registry(100, 10, 5)
        whole_registry, whole_metrics = filled_registry(100, 10, 5)
        runner, url = await serve_registry(registry, metrics)
        whole_runner, whole_url = await serve_registry(
            whole_registry, WholeRegistry(whole_registry, whole_metrics)
        )
        empty_runner, empty_url = await serve_registry(CollectorRegistry(), None)
        try:
            async with aiohttp.ClientSession() as session:
                # Not counted: the first scrape after start renders every section.
                for name, served_url in (("sectioned", url), ("whole", whole_url)):
                    started = time.perf_counter()
                    headers = {"Accept": accept, "Accept-Encoding": "gzip"}
                    async with session.get(served_url, headers=headers) as response:
                        await response.read()
                    first_ms[f"{name}_{fmt}"] = (time.perf_counter() - started) * 1000
                for first in range(0, count, block):
                    for name, served, served_url in (
                        ("whole", whole_metrics, whole_url),
                        ("sectioned", metrics, url),
                    ):
                        urls = {f"empty_{fmt}": empty_url, f"{name}_{fmt}": served_url}
                        indices = range(first, min(first + block, count))
                        sizes[fmt] = await scrape_block(
                            session, served, urls, accept, indices, times
                        )
                        await asyncio.sleep(3.0)  # the last change's re-render is done
        finally:
            await runner.cleanup()
            await whole_runner.cleanup()
            await empty_runner.cleanup()
    stats = {name: summary(values) for name, values in times.items()}
    return {
        "scrapes": count,
        "loadavg_during": [load_before, load()],
        "body_bytes": sizes,  # as decoded: the client asked for gzip
        "first_scrape_ms": first_ms,
        "series": sum(1 for x in generate_latest(registry).splitlines() if not x.startswith(b"#")),
        **{f"{name}_ms": _ms(stat) for name, stat in stats.items()},
        **{
            f"ratio_p99_sectioned_to_whole_{f}": stats[f"sectioned_{f}"]["p99"]
            / stats[f"whole_{f}"]["p99"]
            for f in FORMATS
        },
        **render_costs(registry, metrics, max(5, min(count // 10, 20))),
    }


def render_costs(
    registry: CollectorRegistry, metrics: ProberMetrics, rounds: int
) -> dict[str, Any]:
    """Where the time goes, without HTTP: CPU of a whole render against a re-render
    after one run's end (both formats, no gzip)."""
    costs: dict[str, Any] = {}
    for name, encoder, openmetrics in (
        ("text", generate_latest, False),
        ("openmetrics", openmetrics_latest, True),
    ):
        whole, sectioned = [], []
        splicer = Splicer(encoder, openmetrics)
        splicer.render(metrics.sections())
        for index in range(rounds):
            started = time.process_time()
            encoder(registry)
            whole.append(time.process_time() - started)
            a_run_ends(metrics, index)
            started = time.process_time()
            splicer.render(metrics.sections())
            sectioned.append(time.process_time() - started)
        costs[f"render_{name}_whole_cpu_ms"] = _ms(summary(whole))
        costs[f"render_{name}_after_one_run_cpu_ms"] = _ms(summary(sectioned))
    return costs


def _ms(stat: dict[str, float]) -> dict[str, float]:
    return {k: v * 1000 if k != "n" else v for k, v in stat.items()}


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
    print(
        f"B5 scale (load {load_before[0]:.2f}; during the scrapes "
        f"{m['loadavg_during'][0][0]:.2f} -> {m['loadavg_during'][1][0]:.2f})"
    )
    for fmt in FORMATS:
        print(
            f"  /metrics {fmt}, 100 scenarios x 10 steps ({m['series']} series, "
            f"{m['body_bytes'][fmt]} bytes before gzip), scrapes while runs end:"
        )
        for name, label in (
            ("whole", "before (whole registry re-rendered)"),
            ("sectioned", "sectioned (today)"),
            ("empty", "empty registry"),
        ):
            ms = m[f"{name}_{fmt}_ms"]
            print(
                f"    {label}: p50 {ms['median']:.2f} ms  p90 {ms['p90']:.2f} ms  "
                f"p99 {ms['p99']:.2f} ms  max {ms['max']:.1f} ms"
            )
        print(
            f"    p99 sectioned / before {m[f'ratio_p99_sectioned_to_whole_{fmt}']:.2f}x "
            f"(target: p99 <= 10 ms)"
        )
    for fmt in FORMATS:
        print(
            f"  render CPU ({fmt}): whole p50 {m[f'render_{fmt}_whole_cpu_ms']['median']:.1f} ms, "
            f"after one run's end p50 {m[f'render_{fmt}_after_one_run_cpu_ms']['median']:.2f} ms"
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
