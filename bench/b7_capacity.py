"""B7: what a user buys: CPU per run and runs per minute, `prober serve` vs the bare script.

For each concurrency (1, 2, 3) this runs, one after another on the same machine:
the bare script (bench.bare_script: one process, driver started once, a fresh browser
per run, C loops), and `prober serve` with C copies of the demo sign-in (interval
100 ms, PROBER_MAX_CONCURRENCY=C, PROBER_DATA_DIR set as in the shipped manifests) in
each isolation mode. After a warm-up it reads the whole process tree's CPU time (every
live process's own plus its reaped children's, so the browsers a run already closed
count too) and the number of finished runs at the start and the end of a window, and
samples the tree's PSS every second. Figures are ratios against the bare script of the
same concurrency; the load average is recorded with each.
"""

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

import psutil
import yaml

from bench.common import BROWSER, load, serve_target, write_result
from bench.signin import PASSWORD, USER

_RUNS = re.compile(r"^prober_scenario_runs_total\{[^}]*\} ([0-9.e+]+)$", re.M)


def scenario_file(concurrency: int) -> str:
    """`concurrency` copies of the bundled demo sign-in (the steps `prober demo` runs),
    each back to back: interval 100 ms."""
    demo = yaml.safe_load((resources.files("prober.demo") / "scenarios.yaml").read_text())
    (sign_in,) = [s for s in demo["scenarios"] if s["name"] == "demo-sign-in"]
    copies = [
        {**sign_in, "name": f"sign-in-{index}", "interval": "100ms", "timeout": "20s"}
        for index in range(concurrency)
    ]
    for copy in copies:
        copy.pop("slo", None)
    return yaml.safe_dump({"scenarios": copies}, sort_keys=False)


# Both sides run under it: the bare script's closed browsers leave orphans whose CPU time
# would otherwise be lost (prober serve is a subreaper itself).
REAPER = (sys.executable, "-m", "bench.reaper")


def tree_cpu(pid: int) -> float:
    """CPU seconds of the tree so far: each live process's own and its reaped children's."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = process.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
    return total


def process_kind(process: psutil.Process) -> str:
    """Which part of the tree a process is: what a peak's PSS is split by."""
    cmdline = process.cmdline()
    joined = " ".join(cmdline)
    if "bench.reaper" in joined:
        return "reaper python"
    if "prober.worker" in joined:
        return "worker python"
    if "bench.bare_script" in joined:
        return "bare script python"
    if "prober" in joined and "python" in process.name():
        return "serving python"
    if process.name().startswith("node"):
        return "driver (node)"
    for arg in cmdline:
        if arg.startswith("--utility-sub-type="):
            return "chromium " + arg.split("=", 1)[1].rsplit(".", 1)[-1]
        if arg.startswith("--type="):
            kind = arg.split("=", 1)[1]
            if kind != "utility":
                return "chromium " + kind
    return "chromium browser" if "chrom" in process.name() else process.name()


def tree_pss(pid: int) -> dict[str, int]:
    """The tree's PSS in bytes, by process kind."""
    parts: dict[str, int] = {}
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                kind = process_kind(process)
                parts[kind] = parts.get(kind, 0) + process.memory_full_info().pss
    return parts


class PeakPss(threading.Thread):
    """The tree's highest PSS, sampled every second, and how it split at that sample."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()
        self.parts: dict[str, int] = {}

    def run(self) -> None:
        while not self.stop.wait(1.0):
            parts = tree_pss(self.pid)
            if sum(parts.values()) > self.peak:
                self.peak, self.parts = sum(parts.values()), parts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Bare:
    """The bare script; counts the `run` lines it prints."""

    def __init__(self, url: str, concurrency: int) -> None:
        self.process = subprocess.Popen(
            [*REAPER, sys.executable, "-m", "bench.bare_script", url, str(concurrency)],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.count = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for _ in self.process.stdout:
            self.count += 1

    def runs(self) -> int:
        return self.count


class Serve:
    """`prober serve` in a subprocess; counts runs from its /metrics."""

    def __init__(
        self, url: str, concurrency: int, isolation: str, workdir: Path, data_dir: bool = True
    ) -> None:
        config = workdir / "scenarios.yaml"
        config.write_text(scenario_file(concurrency))
        self.port = free_port()
        env = {
            **os.environ,
            "DEMO_URL": url,
            "DEMO_USER": USER,
            "DEMO_PASSWORD": PASSWORD,
            "PROBER_CONFIG": str(config),
            "PROBER_LISTEN": f"127.0.0.1:{self.port}",
            "PROBER_MAX_CONCURRENCY": str(concurrency),
            "PROBER_MAX_START_OFFSET": "0s",
            "PROBER_ISOLATION": isolation,
            "PROBER_BROWSER_PATH": BROWSER,
            "PROBER_LOG_LEVEL": "WARNING",
        }
        if data_dir:  # history and failure artifacts, so a trace is recorded for each run
            env["PROBER_DATA_DIR"] = str(workdir / "data")
        self.process = subprocess.Popen(
            [*REAPER, sys.executable, "-m", "prober", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def runs(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return 0
        return int(sum(float(v) for v in _RUNS.findall(text)))


def window(runner: Bare | Serve, concurrency: int, seconds: float) -> dict[str, Any]:
    pid = runner.process.pid
    give_up = time.monotonic() + 120
    while runner.runs() < concurrency and time.monotonic() < give_up:  # warm-up
        time.sleep(0.2)
    load_before = load()
    runs0, cpu0, t0 = runner.runs(), tree_cpu(pid), time.monotonic()
    sampler = PeakPss(pid)
    sampler.start()
    time.sleep(seconds)
    runs1, cpu1, t1 = runner.runs(), tree_cpu(pid), time.monotonic()
    sampler.stop.set()
    sampler.join()
    runner.process.send_signal(signal.SIGTERM)
    try:
        runner.process.wait(40)
    except subprocess.TimeoutExpired:
        os.killpg(pid, signal.SIGKILL)
        runner.process.wait()
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    runs = max(runs1 - runs0, 0)
    return {
        "runs": runs,
        "seconds": t1 - t0,
        "runs_per_minute": runs / (t1 - t0) * 60,
        "cpu_seconds": cpu1 - cpu0,
        "cpu_per_run": (cpu1 - cpu0) / runs if runs else float("inf"),
        "peak_pss_mib": sampler.peak / 2**20,
        "peak_pss_per_run_gb": sampler.peak / 1e9 / concurrency,
        "peak_pss_parts_mib": {k: round(v / 2**20) for k, v in sorted(sampler.parts.items())},
        "loadavg": load_before,
    }


def measure(concurrencies: list[int], seconds: float) -> dict[str, Any]:
    report: dict[str, Any] = {}
    ready = threading.Event()
    url: list[str] = []
    stop = threading.Event()

    # The target site runs in a thread of its own: the windows below block on purpose.
    async def target() -> None:
        async with serve_target() as t:
            url.append(t.url)
            ready.set()
            while not stop.is_set():  # noqa: ASYNC110  (a threading.Event, set by main)
                await asyncio.sleep(0.2)

    thread = threading.Thread(target=lambda: asyncio.run(target()), daemon=True)
    thread.start()
    ready.wait()
    try:
        for c in concurrencies:
            row: dict[str, Any] = {"bare": window(Bare(url[0], c), c, seconds)}
            for isolation in ("process", "context"):
                with tempfile.TemporaryDirectory(prefix="b7-") as work:
                    row[isolation] = window(Serve(url[0], c, isolation, Path(work)), c, seconds)
            report[str(c)] = row
    finally:
        stop.set()
        thread.join()
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--concurrency", type=int, nargs="*")
    args = parser.parse_args(argv)
    # --quick keeps `run_all --quick` under 10 minutes: the ends of the range only.
    concurrency = args.concurrency or ([1, 3] if args.quick else [1, 2, 3])
    seconds = 15.0 if args.quick else 60.0
    report = measure(concurrency, seconds)
    print(f"B7 capacity ({seconds:g} s windows)")
    for c, row in report.items():
        bare = row["bare"]
        print(
            f"  c={c} bare: {bare['cpu_per_run']:.2f} CPU-s/run, {bare['runs_per_minute']:.1f}"
            f" runs/min, peak PSS/run {bare['peak_pss_per_run_gb']:.2f} GB"
            f" (load {bare['loadavg'][0]:.2f})"
        )
        for isolation in ("process", "context"):
            r = row[isolation]
            cpu = r["cpu_per_run"] / bare["cpu_per_run"]
            rate = r["runs_per_minute"] / bare["runs_per_minute"]
            pss_target = 0.40 if c == "1" else 0.25
            print(
                f"    {isolation:<8} {r['cpu_per_run']:.2f} CPU-s/run = {cpu:.2f}x bare"
                f" ({'met' if cpu <= 0.8 else 'missed'} <=0.8x); {r['runs_per_minute']:.1f}"
                f" runs/min = {rate:.2f}x ({'met' if rate >= 1.25 else 'missed'} >=1.25x);"
                f" peak PSS/run {r['peak_pss_per_run_gb']:.2f} GB"
                f" ({'met' if r['peak_pss_per_run_gb'] <= pss_target else 'missed'}"
                f" <={pss_target} GB) (load {r['loadavg'][0]:.2f})"
            )
            parts = ", ".join(f"{k} {v}" for k, v in r["peak_pss_parts_mib"].items())
            print(f"      peak PSS by part (MiB): {parts}")
    print(f"  -> {write_result('b7_capacity', report)}")
    return report


if __name__ == "__main__":
    main()
