"""`prober serve` end to end: real runs, a real scrape of /metrics, health, signals."""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PASSWORD, Target, sign_in_scenario

ROOT = Path(__file__).parent.parent
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

BROKEN = """\
  - name: broken
    interval: 1s
    timeout: 20s
    steps:
      - name: home
        actions:
          - goto: "${APP_URL}/error"
"""
STUCK = """\
  - name: stuck
    interval: 1s
    timeout: 60s
    steps:
      - name: home
        actions:
          - goto: "${APP_URL}/never"
          - wait_for: "text=Never shown"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    process: asyncio.subprocess.Process
    url: str
    stderr_path: Path

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(self.url + path) as response:
            return response.status, await response.text()

    async def samples(self) -> Samples:
        _, text = await self.get("/metrics")
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def logs(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.stderr_path.read_text().splitlines() if line]


@asynccontextmanager
async def serving(config: Path, tmp_path: Path, **settings: str) -> AsyncIterator[Served]:
    port = free_port()
    stderr_path = tmp_path / "serve.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROBER_")},
        "PROBER_MAX_START_OFFSET": "100ms",
        "PROBER_GRACE_PERIOD": "1s",
        **{f"PROBER_{k.upper()}": v for k, v in settings.items()},
    }
    with stderr_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "prober", "serve", "--config", str(config),
            "--listen", f"127.0.0.1:{port}",
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    served = Served(process, f"http://127.0.0.1:{port}", stderr_path)
    try:
        await _wait_until(lambda: _responds(served), 20, "serve did not start listening")
        yield served
    finally:
        if process.returncode is None:  # stop it the way Kubernetes does
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _responds(served: Served) -> bool:
    try:
        return (await served.get("/healthz"))[0] == 200
    except aiohttp.ClientError:
        return False


async def _wait_until(condition: Callable[[], object], seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        outcome = condition()
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        if outcome:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(message)


async def is_running(served: Served, scenario: str) -> bool:
    samples = await served.samples()
    return value(samples, "prober_scenario_running", scenario=scenario) == 1


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_slot_recycles_are_counted_by_reason(
    write_config: Callable[[str], Path], target_env: Target, tmp_path: Path
) -> None:
    """With one run per slot every run recycles its slot, for `max_runs`; every other
    reason is exported at 0 from the start, so an alert on its rate sees the first."""
    config = write_config("scenarios:\n" + sign_in_scenario(interval="1s"))
    async with serving(config, tmp_path, slot_max_runs="1") as served:
        samples = await served.samples()
        assert value(samples, "prober_slot_recycles_total", reason="timeout") == 0

        async def recycled_twice() -> bool:
            count = value(await served.samples(), "prober_slot_recycles_total", reason="max_runs")
            return bool(count and count >= 2)

        await _wait_until(recycled_twice, 90, "no slot recycled for max_runs")
        samples = await served.samples()

    for reason in ("timeout", "worker_exit", "browser_crash", "max_age", "max_memory"):
        assert value(samples, "prober_slot_recycles_total", reason=reason) == 0, reason
    assert value(samples, "prober_scenario_runs_total", scenario="sso-login", result="error") == 0


async def test_metrics_after_real_runs_match_the_results(
    write_config: Callable[[str], Path], target_env: Target, tmp_path: Path
) -> None:
    config = write_config("scenarios:\n" + sign_in_scenario(interval="1s") + BROKEN)
    async with serving(config, tmp_path) as served:

        async def enough_runs() -> bool:
            samples = await served.samples()
            ok = value(
                samples, "prober_scenario_runs_total", scenario="sso-login", result="success"
            )
            bad = value(samples, "prober_scenario_runs_total", scenario="broken", result="failure")
            return bool(ok and ok >= 2 and bad and bad >= 2)

        await _wait_until(enough_runs, 90, "not enough runs recorded")
        samples = await served.samples()
        _, text = await served.get("/metrics")
        assert await served.get("/healthz") == (200, "ok\n")
        assert await served.get("/readyz") == (200, "ready\n")

    successes = value(samples, "prober_scenario_runs_total", scenario="sso-login", result="success")
    failures = value(samples, "prober_scenario_runs_total", scenario="broken", result="failure")
    assert successes and failures
    for result in ("failure", "timeout", "error"):
        assert (
            value(samples, "prober_scenario_runs_total", scenario="sso-login", result=result) == 0
        )
    assert value(samples, "prober_scenario_last_successful", scenario="sso-login") == 1
    assert value(samples, "prober_scenario_last_successful", scenario="broken") == 0
    assert (
        value(samples, "prober_scenario_duration_seconds_count", scenario="sso-login") == successes
    )
    assert value(samples, "prober_scenario_duration_seconds_count", scenario="broken") is None
    for step in ("app_page_loaded", "idp_page_loaded", "credentials_accepted", "back_in_app"):
        labels = {"scenario": "sso-login", "step": step}
        assert value(samples, "prober_step_duration_seconds_count", **labels) == successes
        last = value(samples, "prober_step_last_duration_seconds", **labels)
        assert last is not None and 0 < last < 20
    assert (
        value(
            samples,
            "prober_step_failures_total",
            scenario="broken",
            step="home",
            reason="navigation",
            component="app",
        )
        == failures
    )
    now = time.time()
    for scenario in ("sso-login", "broken"):
        last_run = value(samples, "prober_scenario_last_run_timestamp_seconds", scenario=scenario)
        assert last_run is not None and now - 120 < last_run <= now
        assert value(samples, "prober_scenario_interval_seconds", scenario=scenario) == 1
        assert value(samples, "prober_scenario_timeout_seconds", scenario=scenario) == 20
    last_success = value(
        samples, "prober_scenario_last_success_timestamp_seconds", scenario="sso-login"
    )
    assert last_success is not None and now - 120 < last_success <= now
    build = [labels for (name, labels) in samples if name == "prober_build_info"]
    assert len(build) == 1 and dict(build[0])["browser_version"][0].isdigit()

    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (apt-get install prometheus)"
    lint = subprocess.run(  # noqa: ASYNC221 - the served process is gone by now
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0 and lint.stdout + lint.stderr == "", lint.stdout + lint.stderr

    runs = [line for line in served.logs() if line.get("msg") == "run finished"]
    assert {r["scenario"] for r in runs} == {"sso-login", "broken"}
    for line in runs:
        assert {"run_id", "result", "duration_seconds", "failed_step", "error"} <= set(line)
    assert PASSWORD not in served.stderr_path.read_text()


async def test_sigterm_lets_the_in_flight_run_go_then_kills_it_at_grace(
    write_config: Callable[[str], Path], target_env: Target, tmp_path: Path
) -> None:
    config = write_config("scenarios:\n" + STUCK)
    async with serving(config, tmp_path, grace_period="2s") as served:
        await _wait_until(lambda: is_running(served, "stuck"), 30, "the run never started")
        await asyncio.sleep(1.5)  # let the worker launch Chromium
        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(served.process.wait(), 30)
        elapsed = time.monotonic() - started

    assert code == 0
    assert elapsed >= 1.5  # it waited for the grace period rather than killing at once
    messages = [line["msg"] for line in served.logs()]
    assert "grace period over; cancelling runs" in messages
    assert messages[-1] == "stopped"
    # no_leftover_processes: the killed worker's Chromium must be gone from the table.


async def test_second_sigterm_cancels_in_flight_runs_at_once(
    write_config: Callable[[str], Path], target_env: Target, tmp_path: Path
) -> None:
    config = write_config("scenarios:\n" + STUCK)
    async with serving(config, tmp_path, grace_period="5m") as served:
        await _wait_until(lambda: is_running(served, "stuck"), 30, "the run never started")
        served.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        served.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(served.process.wait(), 30)

    assert code == 0
    assert "second signal: cancelling in-flight runs now" in [m["msg"] for m in served.logs()]


async def test_missing_browser_is_not_ready_and_reports_errors_not_failures(
    write_config: Callable[[str], Path], target_env: Target, tmp_path: Path
) -> None:
    config = write_config("scenarios:\n" + sign_in_scenario(interval="1s"))
    async with serving(config, tmp_path, browser_path="/nonexistent/chromium") as served:

        async def errored() -> bool:
            samples = await served.samples()
            count = value(
                samples, "prober_scenario_runs_total", scenario="sso-login", result="error"
            )
            return bool(count and count >= 1)

        await _wait_until(errored, 60, "no error run recorded")
        status, body = await served.get("/readyz")
        samples = await served.samples()

    assert status == 503 and "/nonexistent/chromium" in body
    # Our breakage must not look like the target being down, nor like a fresh probe.
    assert value(samples, "prober_scenario_last_successful", scenario="sso-login") is None
    assert (
        value(samples, "prober_scenario_last_run_timestamp_seconds", scenario="sso-login") is None
    )
