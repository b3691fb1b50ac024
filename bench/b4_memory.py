"""B4: memory. Peak PSS per concurrent run, and what `prober serve` holds between runs.

PSS (proportional set size) splits shared pages between the processes sharing them, so
summing it over a tree does not count Chromium's shared libraries once per process.
Per run: K runs at once (K = 1, 2, 3), the PSS of every worker tree summed, sampled every
100 ms, peak / K; baseline: the same sampling over a bare script's driver + browser.
Idle: `prober serve` with the demo scenario configured, no run due, after it settled.
"""

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from playwright.async_api import async_playwright

from bench.common import BROWSER, baseline_run, demo_scenario, load, serve_target, write_result
from prober.contracts.secrets import Redactor
from prober.supervise import processes
from prober.supervise.browser import DEFAULT_ARGS
from prober.supervise.runner import WorkerRunner

MB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent


def pss(process: psutil.Process) -> int:
    try:
        return int(process.memory_full_info().pss)
    except psutil.Error:
        return 0


def tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return []


class Sampler:
    """Samples in a thread (reading smaps is slow) the PSS of our workers or our driver."""

    def __init__(self, workers: bool) -> None:
        self.workers = workers
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _roots(self) -> list[psutil.Process]:
        roots = []
        for child in psutil.Process().children():
            try:
                tagged = processes.RUN_TAG_ENV in child.environ()
            except psutil.Error:
                continue
            # Workers carry the run tag; the baseline's Playwright driver does not.
            if tagged == self.workers and child.status() != psutil.STATUS_ZOMBIE:
                roots.append(child)
        return roots

    def _run(self) -> None:
        while not self._stop.is_set():
            total = sum(pss(p) for root in self._roots() for p in tree(root))
            self.peak = max(self.peak, total)
            self._stop.wait(0.1)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def per_run(concurrency: list[int], repeats: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with serve_target() as target, async_playwright() as playwright:
        scenario = demo_scenario(target.url)
        # Cold workers: each run's tree is sampled from its start, launch included.
        runner = WorkerRunner(BROWSER, DEFAULT_ARGS, Redactor(()))
        for k in concurrency:
            base_peaks, prober_peaks = [], []
            for _ in range(repeats):
                with Sampler(workers=False) as sampler:
                    await asyncio.gather(*(baseline_run(playwright, target.url) for _ in range(k)))
                base_peaks.append(sampler.peak / k)
                with Sampler(workers=True) as sampler:
                    runs = await asyncio.gather(*(runner.run(scenario) for _ in range(k)))
                assert all(r.ok for r in runs), [r.error for r in runs]
                prober_peaks.append(sampler.peak / k)
            results[str(k)] = {
                "prober_peak_pss_per_run_mb": max(prober_peaks) / MB,
                "baseline_peak_pss_per_run_mb": max(base_peaks) / MB,
                "ratio": max(prober_peaks) / max(base_peaks),
            }
    return results


def idle(prewarm: str, settle: float) -> dict[str, float]:
    """Start `prober serve` on the demo site's scenarios with no run due; measure it idle."""
    config = Path(str(ROOT / "prober" / "demo" / "scenarios.yaml"))
    env = {
        **os.environ,
        "PROBER_PREWARM": prewarm,
        "PROBER_MAX_START_OFFSET": "1h",
        "PROBER_LISTEN": "127.0.0.1:0",
        "PROBER_LOG_LEVEL": "WARNING",
        "DEMO_URL": "http://127.0.0.1:9",
        "DEMO_USER": "probe-user",
        "DEMO_PASSWORD": "demo-password",
    }
    # An interval of an hour would be the same; the offset keeps every run an hour away.
    serve = subprocess.Popen(
        [sys.executable, "-m", "prober", "serve", "--config", str(config)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        process = psutil.Process(serve.pid)
        # Settled: the same processes (pool workers and their browsers up) for `settle` s.
        seen: set[int] = set()
        stable_since = time.monotonic()
        deadline = time.monotonic() + 60
        while time.monotonic() - stable_since < settle and time.monotonic() < deadline:
            now = {p.pid for p in tree(process)}
            if now != seen:
                seen, stable_since = now, time.monotonic()
            time.sleep(0.2)
        return {
            "serve_rss_mb": process.memory_info().rss / MB,
            "serve_pss_mb": pss(process) / MB,
            "tree_pss_mb": sum(pss(p) for p in tree(process)) / MB,
            "tree_processes": len(tree(process)),
        }
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(30)


def bare_python_rss() -> float:
    """A Python that imported what prober's parent imports: the floor for idle RSS."""
    code = "import aiohttp.web, prometheus_client, pydantic, yaml, psutil, time; time.sleep(3)"
    bare = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(2.5)
        return float(psutil.Process(bare.pid).memory_info().rss) / MB
    finally:
        bare.wait(10)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    processes.become_subreaper()
    load_before = load()
    repeats, settle = (1, 2.0) if args.quick else (3, 4.0)
    report: dict[str, Any] = {
        "loadavg_before": load_before,
        "per_run": asyncio.run(per_run([1, 2, 3], repeats)),
        "idle": {mode: idle(mode, settle) for mode in ("none", "driver", "browser")},
        "bare_python_rss_mb": bare_python_rss(),
        "loadavg_after": load(),
    }
    print(f"B4 memory (load {load_before[0]:.2f})")
    for k, r in report["per_run"].items():
        print(
            f"  {k} concurrent: peak PSS per run {r['prober_peak_pss_per_run_mb']:.0f} MB, "
            f"baseline {r['baseline_peak_pss_per_run_mb']:.0f} MB, ratio {r['ratio']:.2f}x "
            "(target <= 450 MB)"
        )
    for mode, r in report["idle"].items():
        print(
            f"  idle serve, prewarm={mode:<7}: RSS {r['serve_rss_mb']:.0f} MB (target <= 80 MB), "
            f"tree PSS {r['tree_pss_mb']:.0f} MB in {r['tree_processes']} processes"
        )
    print(f"  bare python with the same imports: RSS {report['bare_python_rss_mb']:.0f} MB")
    print(f"  -> {write_result('b4_memory', report)}")
    return report


if __name__ == "__main__":
    main()
