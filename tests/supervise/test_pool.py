"""Pre-started workers: real runs, one run per worker, nothing left behind."""

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import psutil
import pytest

from prober.contracts.config import Config
from prober.contracts.result import Outcome
from prober.service import serve
from prober.settings import Settings
from prober.supervise import processes
from prober.supervise.processes import Worker
from prober.supervise.runner import WorkerRunner
from tests.conftest import sign_in_scenario

SIGN_IN = "scenarios:\n" + sign_in_scenario("sign-in", timeout="30s")
HANGS = """
scenarios:
  - name: hangs
    interval: 60s
    timeout: 8s
    steps:
      - name: never_ready
        actions:
          - goto: "${APP_URL}/"
          - wait_for: "text=Nothing like this"
"""

MakeRunner = Callable[..., WorkerRunner]


async def warm_worker(runner: WorkerRunner, browser: bool = True) -> Worker:
    """Wait until the pool holds a worker that is ready (with its browser, if asked)."""
    assert runner.pool is not None
    async with asyncio.timeout(30):
        while True:
            idle = runner.pool.idle
            if idle and (not browser or browsers(idle[0])):
                return idle[0]
            await asyncio.sleep(0.1)


def browsers(worker: Worker) -> list[psutil.Process]:
    found = []
    for process in tree(worker.process.pid):
        with contextlib.suppress(psutil.Error):
            if "chrom" in process.name():
                found.append(process)
    return found


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@pytest.fixture
def sign_in(write_config: Callable[[str], Path], load: Callable[[Path], Config]) -> Config:
    return load(write_config(SIGN_IN))


async def test_cold_worker_runs_sign_in(sign_in: Config, make_runner: MakeRunner) -> None:
    runner = make_runner(sign_in)
    result = await runner.run(sign_in.scenarios[0])
    assert result.result is Outcome.SUCCESS, result.error
    assert [s.name for s in result.steps][-1] == "back_in_app"


@pytest.mark.parametrize("prewarm", ["browser", "driver"])
async def test_warm_worker_runs_one_run_and_is_replaced(
    sign_in: Config, make_runner: MakeRunner, prewarm: str
) -> None:
    runner = make_runner(sign_in, prewarm=prewarm)
    runner.start()
    try:
        warm = await warm_worker(runner, browser=prewarm == "browser")
        result = await runner.run(sign_in.scenarios[0])
        assert result.result is Outcome.SUCCESS, result.error
        assert len(result.steps) == 4
        # The run used the pre-started worker, which then exited: never reused.
        assert warm.process.returncode is not None
        assert not tree(warm.process.pid)
        replacement = await warm_worker(runner, browser=prewarm == "browser")
        assert replacement.process.pid != warm.process.pid
        assert (await runner.run(sign_in.scenarios[0])).ok
    finally:
        await runner.close()


async def test_close_kills_idle_worker_with_its_browser(
    sign_in: Config, make_runner: MakeRunner
) -> None:
    runner = make_runner(sign_in, prewarm="browser", pool_size=2)
    runner.start()
    await warm_worker(runner)
    assert runner.pool is not None
    for _ in range(300):
        if len(runner.pool.idle) == 2 and all(browsers(w) for w in runner.pool.idle):
            break
        await asyncio.sleep(0.1)
    pids = [p.pid for w in runner.pool.idle for p in tree(w.process.pid)]
    assert len(pids) > 4  # two workers, their drivers and browsers
    await runner.close()
    assert not [pid for pid in pids if psutil.pid_exists(pid)]
    assert not runner.live_pids
    # The autouse no_leftover_processes fixture checks for zombies and stray tagged ones.


async def test_timeout_covers_a_run_on_a_warm_worker(
    write_config: Callable[[str], Path], load: Callable[[Path], Config], make_runner: MakeRunner
) -> None:
    config = load(write_config(HANGS))
    runner = make_runner(config, prewarm="browser")
    runner.start()
    try:
        warm = await warm_worker(runner)
        pids = [p.pid for p in tree(warm.process.pid)]
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await runner.run(config.scenarios[0])
        assert result.result is Outcome.TIMEOUT
        assert result.steps[-1].name == "never_ready"
        assert not result.steps[-1].ok
        assert loop.time() - started < 8.0 + 1.0
        assert not [pid for pid in pids if psutil.pid_exists(pid)]
    finally:
        await runner.close()


async def test_worker_that_died_waiting_is_replaced_by_a_cold_one(
    sign_in: Config, make_runner: MakeRunner
) -> None:
    runner = make_runner(sign_in, prewarm="browser")
    runner.start()
    try:
        warm = await warm_worker(runner)
        for process in reversed(tree(warm.process.pid)):
            with contextlib.suppress(psutil.Error):
                process.kill()
        await warm.process.wait()
        result = await runner.run(sign_in.scenarios[0])
        assert result.result is Outcome.SUCCESS, result.error
    finally:
        await runner.close()


async def test_browser_that_died_waiting_is_launched_again(
    sign_in: Config, make_runner: MakeRunner
) -> None:
    runner = make_runner(sign_in, prewarm="browser")
    runner.start()
    try:
        warm = await warm_worker(runner)
        killed = browsers(warm)
        for process in killed:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(killed, timeout=5)
        result = await runner.run(sign_in.scenarios[0])
        assert result.result is Outcome.SUCCESS, result.error
    finally:
        await runner.close()


def warm_processes(prefix: str = "warm-") -> list[psutil.Process]:
    """Our descendants whose run tag is a pre-started worker's (`warm-`) or a slot's."""
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.environ().get(processes.RUN_TAG_ENV, "").startswith(prefix):
                found.append(child)
    return found


@pytest.mark.parametrize(("isolation", "tag"), [("process", "warm-"), ("context", "slot-")])
async def test_serve_kills_prestarted_workers_when_it_stops(
    sign_in: Config,
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    isolation: Literal["process", "context"],
    tag: str,
) -> None:
    """Pre-started workers (process isolation) and slots (context) start with `serve`,
    before any run is due, and `serve` takes their whole trees down when it stops."""
    # No scheduled run can start during the test: only the pool starts a worker.
    monkeypatch.setenv("PROBER_MAX_START_OFFSET", "1h")
    settings = Settings(listen="127.0.0.1:0", prewarm="browser", isolation=isolation)
    config = Config(
        sign_in.path,
        tuple(s.model_copy(update={"interval": 3600.0}) for s in sign_in.scenarios),
        sign_in.secrets,
    )
    serving = asyncio.create_task(serve(settings, config))
    for _ in range(300):
        if any("chrom" in p.name() for p in warm_processes(tag)):
            break
        await asyncio.sleep(0.1)
    started = warm_processes(tag)
    assert started, "the pool did not pre-start a worker"
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(serving, 30) == 0
    assert not [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not warm_processes(tag)
