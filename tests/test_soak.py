"""Soak: many runs of a real `prober serve`, every 10th one wedged and killed at its timeout.

The long version is not in the default run (marker `soak`, also `slow`); a short one
with Chromium SIGKILLed every few seconds is, for both isolation modes. The long one,
count configurable:
    PROBER_SOAK_RUNS=1000 .venv/bin/python -m pytest -m soak -s tests/test_soak.py
With PROBER_SOAK_CHAOS=1 Chromium is also SIGKILLed every 3 s throughout (the runs it
hits end as `error`; everything else must hold). It prints (and with
PROBER_SOAK_REPORT=path writes) RSS, open descriptors and leftover processes of the
serving process; docs/operations.md has the published figures.
"""

import asyncio
import contextlib
import json
import os
import random
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiohttp import web

from prober.demo.site import serve_on_loopback
from tests.test_serve_faults import Serve, serve  # noqa: F401  (a fixture)

# Read at import: the `serve` fixture clears PROBER_* variables from the environment.
RUNS = int(os.environ.get("PROBER_SOAK_RUNS", "1000"))
REPORT = os.environ.get("PROBER_SOAK_REPORT")
CHAOS = os.environ.get("PROBER_SOAK_CHAOS") == "1"

SCRIPT = """
import time


async def run(page, step, params):
    async with step("page_loaded"):
        await page.goto(params["url"])
        if "hang" in await page.content():
            time.sleep(3600)  # a wedged worker: only the parent's hard kill ends it
"""


@pytest.fixture
async def counting_site() -> AsyncIterator[str]:
    """Every 10th page view asks the scenario to wedge itself."""
    views = 0

    async def page(request: web.Request) -> web.Response:
        nonlocal views
        views += 1
        text = "hang" if views % 10 == 0 else "ok"
        return web.Response(text=f"<p>{text}</p>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    async with serve_on_loopback(app) as port:
        yield f"http://127.0.0.1:{port}/"


def zombies(process: psutil.Process) -> int:
    found = 0
    for child in process.children():
        with contextlib.suppress(psutil.Error):  # reaped between listing and asking
            found += child.status() == psutil.STATUS_ZOMBIE
    return found


def browsers(process: psutil.Process) -> list[psutil.Process]:
    """The main Chromium processes (not renderers or helpers) under `prober serve`."""
    found = []
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.name() == "chromium" and not any(
                arg.startswith("--type=") for arg in child.cmdline()
            ):
                found.append(child)
    return found


async def kill_browsers(process: psutil.Process, every: float) -> None:
    """SIGKILL one running Chromium about every `every` seconds, until cancelled."""
    while True:
        await asyncio.sleep(every)
        running = browsers(process)
        if running:
            with contextlib.suppress(psutil.Error, OSError):
                os.kill(random.choice(running).pid, signal.SIGKILL)


@pytest.mark.parametrize("isolation", ["process", "context"])
async def test_short_soak_with_browsers_killed(
    serve: Serve,  # noqa: F811
    counting_site: str,
    tmp_path: Path,
    isolation: str,
) -> None:
    """20 runs, Chromium SIGKILLed every 3 s: nothing left behind, each run counted once."""
    report = await soak(serve, counting_site, tmp_path, 20, isolation, chaos=True)
    assert report["zombies_after_stop"] == 0, report


@pytest.mark.slow
@pytest.mark.soak
@pytest.mark.parametrize("isolation", ["process", "context"])
async def test_soak(
    serve: Serve,  # noqa: F811
    counting_site: str,
    tmp_path: Path,
    isolation: str,
) -> None:
    report = await soak(serve, counting_site, tmp_path, RUNS, isolation, chaos=CHAOS)
    # Every 10th page view wedges its run; nothing else may go wrong but the browsers
    # chaos kills (their runs are errors: prober's side, not the target's).
    results = report["results"]
    # A wedged run whose browser chaos killed first ends as an error, not a timeout.
    ended_early = results.get("timeout", 0) + (results.get("error", 0) if CHAOS else 0)
    assert ended_early >= report["runs"] // 10 - 2, report
    assert results.get("failure", 0) == 0, report
    assert CHAOS or results.get("error", 0) == 0, report
    assert report["rss_growth_percent"] <= 5, report
    assert report["open_fds_end"] <= report["open_fds_after_warm_up"] + 5, report
    assert not report["zombies_after_stop"], report


async def soak(
    serve: Serve,  # noqa: F811
    counting_site: str,
    tmp_path: Path,
    total: int,
    isolation: str,
    chaos: bool,
) -> dict[str, Any]:
    """Serve two scenarios until `total` runs are counted; the figures, and checks that
    hold with or without chaos (each run counted exactly once)."""
    (tmp_path / "soak_flow.py").write_text(SCRIPT)
    scenario = """
  - name: {name}
    interval: 100ms
    timeout: 20s
    script: "soak_flow:run"
    params: {{url: "${{SOAK_URL}}"}}
"""
    served = await serve(
        scenario.format(name="soak-a") + scenario.format(name="soak-b"),
        env={
            "SOAK_URL": counting_site,
            "PROBER_MAX_CONCURRENCY": "2",
            "PYTHONPATH": str(tmp_path),
            "PROBER_LOG_LEVEL": "INFO",
            "PROBER_ISOLATION": isolation,
        },
    )
    process = psutil.Process(served.process.pid)
    killer = asyncio.create_task(kill_browsers(process, 3.0)) if chaos else None

    async def runs() -> float:
        samples = await served.scrape()
        return sum(v for (name, _), v in samples.items() if name == "prober_scenario_runs_total")

    warm_up = min(total // 2, max(20, total // 10))
    started = time.monotonic()
    while await runs() < warm_up:  # noqa: ASYNC110  (polling another process)
        await asyncio.sleep(1)
    rss_start, fds_start = process.memory_info().rss, process.num_fds()
    max_zombies = 0
    while (done := await runs()) < total:
        max_zombies = max(max_zombies, zombies(process))
        await asyncio.sleep(1)
    if killer is not None:
        killer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await killer
    rss_end, fds_end = process.memory_info().rss, process.num_fds()
    samples = await served.scrape()
    results: dict[str, float] = {}
    for (name, labels), value in samples.items():
        if name == "prober_scenario_runs_total":
            result = dict(labels)["result"]
            results[result] = results.get(result, 0) + value
    elapsed = time.monotonic() - started
    assert await served.stop() == 0
    leftovers = zombies(psutil.Process())
    report = {
        "runs": done,
        "seconds": round(elapsed),
        "results": results,
        "rss_mib_after_warm_up": round(rss_start / 2**20, 1),
        "rss_mib_end": round(rss_end / 2**20, 1),
        "rss_growth_percent": round(100 * (rss_end - rss_start) / rss_start, 1),
        "open_fds_after_warm_up": fds_start,
        "open_fds_end": fds_end,
        "max_zombie_children_seen": max_zombies,
        "zombies_after_stop": leftovers,
    }
    print("soak:", json.dumps(report))
    if REPORT:
        await asyncio.to_thread(Path(REPORT).write_text, json.dumps(report, indent=2) + "\n")
    # Counted exactly once: one `run finished` line per run counted in the metrics (the
    # log can only be ahead, by runs that finished after the last scrape).
    finished = served.finished()
    assert sum(results.values()) <= len(finished) <= sum(results.values()) + 2, report
    assert len({entry["run_id"] for entry in finished}) == len(finished), report
    return report
