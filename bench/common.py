"""What every benchmark shares: the target site, the bare-Playwright baseline, the machine.

The machine is shared and noisy, so no figure stands alone: each benchmark measures the
baseline in the same process, interleaved with the thing under test, and reports ratios.
"""

import asyncio
import json
import os
import platform
import statistics
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from playwright.async_api import Playwright

from bench.signin import PASSWORD, USER, sign_in
from prober.contracts.config import Scenario, load_config
from prober.demo.site import make_app, serve_on_loopback
from prober.supervise import processes
from prober.supervise.browser import DEFAULT_ARGS, browser_version, find_browser, playwright_version

RESULTS = Path(__file__).resolve().parent / "results"
STEPS = ("app_page_loaded", "idp_page_loaded", "credentials_accepted", "back_in_app")
BROWSER = str(find_browser(None))


@dataclass
class Target:
    """The demo site on 127.0.0.1; `delays` (path -> seconds) slows chosen responses."""

    url: str = ""
    delays: dict[str, float] = field(default_factory=dict)


@asynccontextmanager
async def serve_target() -> AsyncIterator[Target]:
    """The target, and this process made a child subreaper as `prober serve` and
    `prober run` make themselves: benchmarks that drive a WorkerRunner here must reap
    the Chromium helpers a killed worker orphans, or they wait for PID 1 to (up to 2 s
    per run on this machine)."""
    processes.become_subreaper()
    state = Target()

    @web.middleware
    async def delay(request: web.Request, handler: Handler) -> web.StreamResponse:
        seconds = state.delays.get(request.path)
        if seconds:
            await asyncio.sleep(seconds)
        return await handler(request)

    app = make_app(USER, PASSWORD)
    app.middlewares.append(delay)
    async with serve_on_loopback(app) as port:
        state.url = f"http://127.0.0.1:{port}"
        yield state


def demo_scenario(url: str, interval: float | None = None) -> Scenario:
    """The bundled `demo-sign-in` scenario (four steps) pointed at `url`."""
    os.environ.update(DEMO_URL=url, DEMO_USER=USER, DEMO_PASSWORD=PASSWORD)
    path = Path(str(resources.files("prober.demo") / "scenarios.yaml"))
    scenario = load_config(path).scenario("demo-sign-in")
    if interval is not None:
        scenario = scenario.model_copy(update={"interval": interval})
    return scenario


async def baseline_run(playwright: Playwright, url: str, har: Path | None = None) -> dict[str, Any]:
    """bench.signin.sign_in with the system Chromium and prober's launch flags."""
    return await sign_in(playwright, url, BROWSER, list(DEFAULT_ARGS), har)


def load() -> tuple[float, float, float]:
    return os.getloadavg()


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare figures across machines."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    free = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "memory_total": free.splitlines()[1].split()[1] if free else "unknown",
        "python": platform.python_version(),
        "chromium": browser_version(Path(BROWSER)),
        "playwright": playwright_version(),
        "loadavg": load(),
    }


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); exact for the small samples we take."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "p90": pct(values, 90),
        "p99": pct(values, 99),
        "min": min(values),
        "max": max(values),
    }


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"benchmark": name, "machine": machine(), **data}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path
