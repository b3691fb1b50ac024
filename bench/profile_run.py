"""Where one run's CPU goes: `python -m bench.profile_run [--rounds N]`.

Each part is measured as the CPU time of this process's whole tree (its own, the
Playwright driver's and Chromium's, live and reaped, read from /proc through psutil)
before and after that part alone, with a fresh browser per round, the demo sign-in on
127.0.0.1 as the flow. Interpreter and imports are measured in subprocesses (their
RUSAGE_CHILDREN). This process is a child subreaper, so what the closed browser orphans
is reaped here and counted. The parent's share comes from B7 (the serving process's own CPU).
Prints the median of each part over the rounds and writes bench/results/profile_run.json.
"""

import argparse
import asyncio
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
from playwright.async_api import Page, async_playwright

from bench.common import BROWSER, load, serve_target, write_result
from bench.signin import PASSWORD, USER
from prober.supervise.browser import DEFAULT_ARGS
from prober.supervise.processes import become_subreaper
from prober.worker.timings import PageTimingProbe


def tree_cpu() -> float:
    total = 0.0
    root = psutil.Process()
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = process.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def reap_zombies() -> None:
    """Reap Chromium's orphans that re-parented to us (we are a child subreaper), so
    their CPU time moves into our reaped-children total instead of vanishing."""
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error, ChildProcessError):
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, 0)


def child_cpu(code: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


async def flow(page: Page, url: str) -> None:
    await page.goto(f"{url}/")
    await page.locator("text=Sign in with IdP").first.wait_for()
    await page.locator("text=Sign in with IdP").click()
    await page.locator("input[name=login]").first.wait_for()
    await page.locator("input[name=login]").fill(USER)
    await page.locator("input[name=password]").fill(PASSWORD)
    await page.locator("button[type=submit]").click()
    await page.wait_for_url("**/projects")


async def one_round(url: str, parts: dict[str, list[float]]) -> None:
    async def part(name: str, action: Callable[[], Awaitable[Any]]) -> Any:
        before = tree_cpu()
        result = await action()
        parts.setdefault(name, []).append(tree_cpu() - before)
        return result

    manager = async_playwright()
    playwright = await part("driver start", manager.start)
    browser = await part(
        "browser launch",
        lambda: playwright.chromium.launch(
            executable_path=BROWSER, args=list(DEFAULT_ARGS), headless=True
        ),
    )

    async def context_and_page() -> Any:
        context = await browser.new_context()
        return context, await context.new_page()

    context, page = await part("context and page", context_and_page)
    await part("flow", lambda: flow(page, url))
    await part("context close", context.close)
    # The same flow with the tracing every failed run keeps (PROBER_DATA_DIR set), and
    # with prober's page timing probe, each in a fresh context.
    context, page = await context_and_page()
    with tempfile.TemporaryDirectory() as scratch:

        async def traced() -> None:
            await context.tracing.start(snapshots=True, screenshots=False, sources=False)
            await flow(page, url)
            await context.tracing.stop(path=Path(scratch) / "trace.zip")

        await part("flow with tracing", traced)
    await context.close()
    context, page = await context_and_page()
    probe = PageTimingProbe(lambda: "step", lambda event: None)

    async def timed() -> None:
        await probe.install(context, page)
        await flow(page, url)
        await probe.read_last(page)

    await part("flow with page timings", timed)
    await context.close()

    async def close_and_reap() -> None:
        await browser.close()
        await asyncio.sleep(0.5)  # the helpers Chromium orphans re-parent to us
        reap_zombies()

    await part("browser close", close_and_reap)
    await part("driver stop", playwright.stop)


async def measure(rounds: int) -> dict[str, Any]:
    parts: dict[str, list[float]] = {}
    for _ in range(rounds):
        parts.setdefault("interpreter", []).append(child_cpu("pass"))
        parts.setdefault("imports (prober.worker.main)", []).append(
            child_cpu("import prober.worker.main") - parts["interpreter"][-1]
        )
        parts.setdefault("imports (playwright only)", []).append(
            child_cpu("import playwright.async_api") - parts["interpreter"][-1]
        )
    async with serve_target() as target:
        for _ in range(rounds):
            await one_round(target.url, parts)
    return {name: statistics.median(values) for name, values in parts.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    become_subreaper()
    load_before, started = load(), time.monotonic()
    figures = asyncio.run(measure(args.rounds))
    print(f"profile of one run, median of {args.rounds} (load {load_before[0]:.2f})")
    for name, seconds in figures.items():
        print(f"  {name:<32} {seconds:6.3f} CPU-s")
    report = {"loadavg_before": load_before, "seconds": time.monotonic() - started, **figures}
    print(f"  -> {write_result('profile_run', report)}")
    return report


if __name__ == "__main__":
    main()
