"""Context isolation: slots with a real Chromium against the real target on 127.0.0.1.

The autouse no_leftover_processes fixture checks, after every test, that no worker,
driver or browser process and no zombie is left.
"""

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psutil
import pytest

from prober.contracts.config import Config
from prober.contracts.result import Outcome
from prober.supervise.runner import WorkerRunner
from prober.supervise.slots import SlotLimits
from tests.conftest import Target, sign_in_scenario

Load = Callable[[Path], Config]
MakeRunner = Callable[..., WorkerRunner]

# Run 1 leaves a cookie, local storage and a granted permission behind; every later
# run, of this scenario or another, fails its step if it finds any of them.
STATEFUL = """
async def run(page, step, params):
    async with step("fresh_state"):
        await page.goto(params["url"] + "/")
        found = await page.evaluate(
            "() => [document.cookie, localStorage.getItem('left'), history.length]"
        )
        if found[0] or found[1]:
            raise AssertionError(f"state from an earlier run: {found!r}")
        await page.evaluate(
            "() => { document.cookie = 'left=1; max-age=3600'; localStorage.setItem('left', '1'); }"
        )
        await page.context.grant_permissions(["geolocation"])
"""

# Module state: each run must see a freshly imported module (and helper module).
COUNTING = """
import count_helper

RUNS = []


async def run(page, step, params):
    async with step("module_fresh"):
        RUNS.append(1)
        count_helper.SEEN.append(1)
        if len(RUNS) != 1 or len(count_helper.SEEN) != 1:
            raise AssertionError(f"module state leaked: {len(RUNS)} {len(count_helper.SEEN)}")
"""

SCENARIOS = """
scenarios:
  - name: stateful-a
    interval: 60s
    timeout: 20s
    script: "stateful:run"
    params: {url: "${APP_URL}"}
  - name: stateful-b
    interval: 60s
    timeout: 20s
    script: "stateful:run"
    params: {url: "${APP_URL}"}
  - name: counting
    interval: 60s
    timeout: 20s
    script: "counting:run"
  - name: stuck
    interval: 60s
    timeout: 6s
    steps:
      - name: never_shown
        actions:
          - goto: "${APP_URL}/never"
          - wait_for: "text=Dashboard"
  - name: wedged
    interval: 60s
    timeout: 6s
    script: "wedged:run"
  - name: crashes
    interval: 60s
    timeout: 20s
    script: "crashes:run"
"""

# Ends the slot's worker mid-run, as a segfaulting extension or an OOM kill would.
CRASHES = """
import os


async def run(page, step, params):
    async with step("worker_gone"):
        os._exit(3)
"""

# Blocks the worker's event loop: only the parent's kill at the deadline ends the run.
WEDGED = """
import time


async def run(page, step, params):
    async with step("never_shown"):
        time.sleep(3600)
"""


@pytest.fixture
def config(write_config: Callable[[str], Path], load: Load, tmp_path: Path) -> Config:
    (tmp_path / "stateful.py").write_text(STATEFUL)
    (tmp_path / "counting.py").write_text(COUNTING)
    (tmp_path / "wedged.py").write_text(WEDGED)
    (tmp_path / "crashes.py").write_text(CRASHES)
    (tmp_path / "count_helper.py").write_text("SEEN = []\n")
    return load(write_config(SCENARIOS + sign_in_scenario()))


@pytest.fixture
async def slots(
    config: Config, make_runner: MakeRunner, request: pytest.FixtureRequest
) -> AsyncIterator[WorkerRunner]:
    limits = getattr(request, "param", SlotLimits())
    runner = make_runner(config, isolation="context", slot_limits=limits)
    runner.start()
    try:
        yield runner
    finally:
        await runner.close()


def slot_pids(runner: WorkerRunner) -> list[int]:
    assert runner.slots is not None
    return [slot.worker.process.pid for slot in runner.slots.idle]


async def test_each_run_gets_a_fresh_context_in_the_same_browser(
    slots: WorkerRunner, config: Config
) -> None:
    first = await slots.run(config.scenario("stateful-a"))
    pids = slot_pids(slots)
    second = await slots.run(config.scenario("stateful-a"))
    other = await slots.run(config.scenario("stateful-b"))

    assert [first.result, second.result, other.result] == [Outcome.SUCCESS] * 3, (
        second.error or other.error
    )
    # The same slot served all three: the isolation came from the context alone.
    assert len(pids) == 1 and slot_pids(slots) == pids


async def test_python_modules_are_imported_afresh_for_every_run(
    slots: WorkerRunner, config: Config
) -> None:
    results = [await slots.run(config.scenario("counting")) for _ in range(3)]

    assert [r.result for r in results] == [Outcome.SUCCESS] * 3, [r.error for r in results]
    assert len(slot_pids(slots)) == 1


@pytest.mark.parametrize("slots", [SlotLimits(max_runs=2)], indirect=True)
async def test_a_slot_is_recycled_after_max_runs(slots: WorkerRunner, config: Config) -> None:
    results = [await slots.run(config.scenario("sso-login"))]
    first = slot_pids(slots)
    results.append(await slots.run(config.scenario("sso-login")))
    assert [r.result for r in results] == [Outcome.SUCCESS] * 2, [r.error for r in results]
    assert slot_pids(slots) == []  # served its 2 runs: killed with its tree
    third = await slots.run(config.scenario("sso-login"))

    assert third.result is Outcome.SUCCESS, third.error
    assert len(first) == 1 and slot_pids(slots) != first and len(slot_pids(slots)) == 1


@pytest.mark.parametrize("slots", [SlotLimits(max_memory=1 << 26)], indirect=True)
async def test_a_slot_above_its_memory_limit_is_recycled(
    slots: WorkerRunner, config: Config
) -> None:
    result = await slots.run(config.scenario("sso-login"))

    assert result.result is Outcome.SUCCESS, result.error
    assert slot_pids(slots) == []  # a browser tree is far above 64 MiB of PSS


@pytest.mark.parametrize("scenario", ["stuck", "wedged"])
async def test_a_run_that_times_out_takes_its_slot_down_with_it(
    slots: WorkerRunner, config: Config, scenario: str
) -> None:
    await slots.run(config.scenario("sso-login"))
    (before,) = slot_pids(slots)
    tree = [psutil.Process(before), *psutil.Process(before).children(recursive=True)]
    stuck = await slots.run(config.scenario(scenario))

    assert stuck.result is Outcome.TIMEOUT, stuck.error
    assert stuck.failed_step == "never_shown"
    assert slot_pids(slots) == []
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree)
    after = await slots.run(config.scenario("sso-login"))
    assert after.result is Outcome.SUCCESS, after.error
    assert slot_pids(slots) not in ([], [before])


async def test_a_worker_that_dies_mid_run_is_an_error_naming_its_exit_code(
    slots: WorkerRunner, config: Config
) -> None:
    crashed = await slots.run(config.scenario("crashes"))

    assert crashed.result is Outcome.ERROR
    assert crashed.error is not None and "exit code 3" in crashed.error, crashed.error
    assert crashed.failed_step == "worker_gone"
    assert slot_pids(slots) == []  # its tree is gone; the next run gets a fresh slot
    after = await slots.run(config.scenario("sso-login"))
    assert after.result is Outcome.SUCCESS, after.error


async def test_a_browser_killed_between_runs_is_relaunched_and_its_slot_recycled(
    slots: WorkerRunner, config: Config
) -> None:
    await slots.run(config.scenario("sso-login"))
    (pid,) = slot_pids(slots)
    browsers = [
        p for p in psutil.Process(pid).children(recursive=True) if "chrom" in p.name().lower()
    ]
    assert browsers
    for process in browsers:
        os.kill(process.pid, signal.SIGKILL)

    survived = await slots.run(config.scenario("sso-login"))

    assert survived.result is Outcome.SUCCESS, survived.error
    assert slot_pids(slots) == []  # the crash recycles the slot once its run is over
    again = await slots.run(config.scenario("sso-login"))
    assert again.result is Outcome.SUCCESS, again.error
    assert slot_pids(slots) not in ([], [pid])


async def test_a_server_delay_shows_in_full_with_three_slots_in_parallel(
    config: Config, make_runner: MakeRunner, target_env: Target
) -> None:
    target_env.delays["/idp/authorize"] = 0.3
    runner = make_runner(config, isolation="context", pool_size=3)
    try:
        for _ in range(2):  # the second round runs in warm slots
            results = await asyncio.gather(
                *(runner.run(config.scenario("sso-login")) for _ in range(3))
            )
            assert [r.result for r in results] == [Outcome.SUCCESS] * 3, [r.error for r in results]
            for result in results:
                durations = {s.name: s.duration_seconds for s in result.steps}
                assert durations["idp_page_loaded"] >= 0.30
        assert len(slot_pids(runner)) == 3
    finally:
        await runner.close()
