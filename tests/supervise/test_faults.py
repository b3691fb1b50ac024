"""The fault suite: each fault, injected on purpose, gets the verdict docs/faults.md gives it.

Every test also leaves no worker, driver or browser process and no zombie behind (the
autouse fixture in conftest.py) and every run is recorded exactly once. Browser faults
use the real Chromium against real listeners on 127.0.0.1; faults of the worker's
output use small stub commands, because there the browser is not the point.
"""

import asyncio
import contextlib
import os
import signal
import ssl
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psutil
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from prober.contracts.config import Config, load_config
from prober.contracts.result import Outcome, Reason, RunResult
from prober.contracts.secrets import Redactor
from prober.demo.site import serve_on_loopback
from prober.record.history import History, Retention
from prober.record.metrics import ProberMetrics
from prober.schedule.scheduler import Scheduler
from prober.settings import (
    DEFAULT_PAGE_TIMING_BUCKETS,
    DEFAULT_SCENARIO_BUCKETS,
    DEFAULT_STEP_BUCKETS,
)
from prober.supervise.runner import WorkerRunner
from prober.supervise.tracker import MAX_GARBAGE_LINES
from tests.conftest import SIGN_IN_STEPS, Target
from tests.fakes import CountingRecorder
from tests.helpers import STUB_WORKER, stub_scenario, wait_until

MakeRunner = Callable[..., WorkerRunner]
WriteConfig = Callable[[str], Path]


def one_step(url: str, *more: str, timeout: str = "15s") -> str:
    actions = "".join(f"\n              - {action}" for action in (f'goto: "{url}"', *more))
    return f"""
    scenarios:
      - name: faulty
        interval: 60s
        timeout: {timeout}
        steps:
          - name: page_loaded
            actions:{actions}
    """


def recorded(result: RunResult) -> CollectorRegistry:
    """Record the result as `prober serve` would; the registry shows what alerts see."""
    registry = CollectorRegistry()
    metrics = ProberMetrics(
        registry, DEFAULT_SCENARIO_BUCKETS, DEFAULT_STEP_BUCKETS, DEFAULT_PAGE_TIMING_BUCKETS
    )
    metrics.record(result, ended_at=0.0)
    return registry


def assert_verdict(
    result: RunResult, outcome: Outcome, reason: Reason | None, failed_step: str | None
) -> None:
    assert (result.result, result.reason, result.failed_step) == (outcome, reason, failed_step), (
        result.error
    )
    registry = recorded(result)
    runs = registry.get_sample_value(
        "prober_scenario_runs_total", {"scenario": result.scenario, "result": outcome.value}
    )
    assert runs == 1


@pytest.fixture
def closed_port() -> int:
    """A port nobody listens on: bound, then closed, so connecting is refused."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """Accepts connections and never answers; the event is set when one arrives."""
    connected = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        connected.set()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/", connected
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
async def tls_site(self_signed: tuple[Path, Path]) -> AsyncIterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*self_signed)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="<h1>Hello</h1>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", hello)
    async with serve_on_loopback(app, ssl_context=context) as port:
        yield f"https://127.0.0.1:{port}/"


@pytest.fixture
def script_dir(tmp_path: Path) -> Iterator[Path]:
    """Python scenarios live beside the config; load_config finds them on sys.path."""
    (tmp_path / "faulty_scripts.py").write_text(
        textwrap.dedent("""
        import asyncio
        import time

        async def raises(page, step, params):
            async with step("page_loaded"):
                raise RuntimeError("the scenario's own bug")

        async def blocks(page, step, params):
            async with step("page_loaded"):
                time.sleep(3600)

        async def never_returns(page, step, params):
            async with step("page_loaded"):
                await asyncio.Event().wait()
        """)
    )
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))


# -- the target misbehaves -------------------------------------------------------------


async def test_refused_connection_is_a_navigation_failure(
    write_config: WriteConfig, make_runner: MakeRunner, closed_port: int
) -> None:
    config = load_config(write_config(one_step(f"http://127.0.0.1:{closed_port}/")))
    result = await make_runner(config).run(config.scenario("faulty"))
    assert_verdict(result, Outcome.FAILURE, Reason.NAVIGATION, "page_loaded")
    assert "ERR_CONNECTION_REFUSED" in (result.error or "")


async def test_target_that_never_answers_times_out_in_its_step(
    write_config: WriteConfig,
    make_runner: MakeRunner,
    silent_server: tuple[str, asyncio.Event],
) -> None:
    config = load_config(write_config(one_step(silent_server[0])))
    result = await make_runner(config).run(config.scenario("faulty"))
    assert_verdict(result, Outcome.TIMEOUT, Reason.TIMEOUT, "page_loaded")


async def test_http_500_is_a_navigation_failure(
    write_config: WriteConfig, make_runner: MakeRunner, target: Target
) -> None:
    config = load_config(write_config(one_step(f"{target.url}/error")))
    result = await make_runner(config).run(config.scenario("faulty"))
    assert_verdict(result, Outcome.FAILURE, Reason.NAVIGATION, "page_loaded")
    assert "HTTP 500" in (result.error or "")


async def test_name_that_does_not_resolve_is_a_navigation_failure(
    write_config: WriteConfig, make_runner: MakeRunner
) -> None:
    config = load_config(write_config(one_step("http://prober-fault.invalid/")))
    result = await make_runner(config).run(config.scenario("faulty"))
    assert_verdict(result, Outcome.FAILURE, Reason.NAVIGATION, "page_loaded")
    assert "ERR_NAME_NOT_RESOLVED" in (result.error or "")


async def test_invalid_tls_certificate_is_a_tls_failure(
    write_config: WriteConfig, make_runner: MakeRunner, tls_site: str
) -> None:
    config = load_config(write_config(one_step(tls_site)))
    result = await make_runner(config).run(config.scenario("faulty"))
    assert_verdict(result, Outcome.FAILURE, Reason.TLS, "page_loaded")
    assert "ERR_CERT" in (result.error or "")


async def test_element_that_never_shows_times_out_in_its_step(
    write_config: WriteConfig, make_runner: MakeRunner, target: Target
) -> None:
    config = load_config(write_config(one_step(f"{target.url}/never", 'wait_for: "#dashboard"')))
    result = await make_runner(config).run(config.scenario("faulty"))
    assert_verdict(result, Outcome.TIMEOUT, Reason.TIMEOUT, "page_loaded")


# -- the scenario's own code misbehaves ------------------------------------------------


def scripted(function: str, timeout: str = "15s") -> str:
    return f"""
    scenarios:
      - name: faulty
        interval: 60s
        timeout: {timeout}
        script: "faulty_scripts:{function}"
    """


async def test_script_that_raises_is_a_script_failure(
    write_config: WriteConfig, make_runner: MakeRunner, script_dir: Path
) -> None:
    config = load_config(write_config(scripted("raises")))
    result = await make_runner(config).run(config.scenario("faulty"))
    assert_verdict(result, Outcome.FAILURE, Reason.SCRIPT, "page_loaded")
    assert "the scenario's own bug" in (result.error or "")


async def test_script_that_blocks_the_event_loop_is_killed_at_the_timeout(
    write_config: WriteConfig, make_runner: MakeRunner, script_dir: Path
) -> None:
    config = load_config(write_config(scripted("blocks")))
    result = await make_runner(config).run(config.scenario("faulty"))
    assert_verdict(result, Outcome.TIMEOUT, Reason.TIMEOUT, "page_loaded")
    assert "killed at the 15s timeout" in (result.error or "")


async def test_script_that_never_returns_times_out(
    write_config: WriteConfig, make_runner: MakeRunner, script_dir: Path
) -> None:
    config = load_config(write_config(scripted("never_returns")))
    result = await make_runner(config).run(config.scenario("faulty"))
    assert_verdict(result, Outcome.TIMEOUT, Reason.TIMEOUT, "page_loaded")


# -- our own environment breaks ---------------------------------------------------------


def browser_main(worker: int) -> psutil.Process | None:
    """The Chromium browser process (not a renderer or helper) under a worker."""
    with contextlib.suppress(psutil.Error):
        for process in psutil.Process(worker).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                cmdline = process.cmdline()
                if process.name() == "chromium" and not any(
                    arg.startswith("--type=") for arg in cmdline
                ):
                    return process
    return None


@pytest.mark.parametrize("victim", ["worker", "browser"])
@pytest.mark.parametrize("isolation", ["process", "context"])
async def test_process_killed_mid_step_is_a_crash(
    victim: str,
    isolation: str,
    write_config: WriteConfig,
    make_runner: MakeRunner,
    silent_server: tuple[str, asyncio.Event],
) -> None:
    config = load_config(write_config(one_step(silent_server[0], timeout="60s")))
    runner = make_runner(config, isolation=isolation)
    try:
        run = asyncio.create_task(runner.run(config.scenario("faulty")))
        await asyncio.wait_for(silent_server[1].wait(), 45)  # the step waits on the target
        (worker,) = runner.live_pids
        if victim == "worker":
            os.kill(worker, signal.SIGKILL)
        else:
            browser = browser_main(worker)
            assert browser is not None
            browser.kill()
        result = await asyncio.wait_for(run, 45)
        assert_verdict(result, Outcome.ERROR, Reason.CRASH, "page_loaded")
        # A slot whose browser or worker died is never handed another run.
        assert runner.slots is None or runner.slots.idle == []
    finally:
        await runner.close()


async def test_a_stopped_browser_at_the_deadline_is_an_error_not_the_targets_timeout(
    write_config: WriteConfig,
    make_runner: MakeRunner,
    silent_server: tuple[str, asyncio.Event],
) -> None:
    """SIGSTOP on the browser: the target did nothing wrong, prober's browser hung."""
    config = load_config(write_config(one_step(silent_server[0], timeout="10s")))
    runner = make_runner(config)
    run = asyncio.create_task(runner.run(config.scenario("faulty")))
    await asyncio.wait_for(silent_server[1].wait(), 45)  # the step is waiting on the target
    (worker,) = runner.live_pids
    browser = browser_main(worker)
    assert browser is not None
    browser.suspend()
    result = await asyncio.wait_for(run, 45)
    assert_verdict(result, Outcome.ERROR, None, "page_loaded")
    assert result.error and "stopped processes (chromium" in result.error
    assert not browser.is_running() or browser.status() == psutil.STATUS_ZOMBIE


async def test_a_tiny_dev_shm_does_not_break_a_run(
    write_config: WriteConfig, make_runner: MakeRunner, target_env: Target
) -> None:
    """--disable-dev-shm-usage (a default argument) keeps Chromium off /dev/shm.

    The worker runs in a private mount namespace whose /dev/shm is a 1 MB tmpfs.
    """
    config = load_config(
        write_config(
            "scenarios:\n  - name: sso-login\n    interval: 60s\n    timeout: 30s\n"
            + textwrap.indent(textwrap.dedent(SIGN_IN_STEPS), "    ")
        )
    )
    shell = 'mount -t tmpfs -o size=1m tmpfs /dev/shm && exec "$0" -m prober.worker'
    runner = make_runner(
        config,
        command=["unshare", "-m", "--propagation", "private", "sh", "-c", shell, sys.executable],
    )
    result = await runner.run(config.scenario("sso-login"))
    assert result.result is Outcome.SUCCESS, result.error


# -- the worker's output is broken (stub workers: the browser is not the point) --------


def stub_command(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


STUB_CONFIG = "scenarios:" + stub_scenario("faulty", interval="60s")


@pytest.mark.parametrize(
    ("code", "error"),
    [
        pytest.param(
            "import sys; sys.stdin.read(); print('Segmentation fault?'); print('{\"no\": 1}')",
            "2 unparseable line(s) on stdout, first: 'Segmentation fault?'",
            id="garbage-then-exit-0",
        ),
        pytest.param(
            "import sys; sys.stdin.read()\nwhile True: sys.stdout.write('x' * 65536)",
            "worker wrote a line longer than",
            id="flood-one-endless-line",
        ),
        pytest.param(
            "import sys; sys.stdin.read()\nwhile True: print('garbage', flush=False)",
            f"worker wrote {MAX_GARBAGE_LINES} unparseable lines",
            id="flood-of-lines",
        ),
    ],
)
async def test_broken_worker_output_is_a_crash(
    code: str, error: str, write_config: WriteConfig, make_runner: MakeRunner
) -> None:
    config = load_config(write_config(STUB_CONFIG))
    result = await make_runner(config, command=stub_command(code)).run(config.scenario("faulty"))
    assert_verdict(result, Outcome.ERROR, Reason.CRASH, None)
    assert error in (result.error or "")


# -- the scheduler under all of it ------------------------------------------------------


async def test_faulty_scenarios_never_stop_the_scheduler_or_lose_a_run(
    write_config: WriteConfig, clean_env: None
) -> None:
    """Hangs, crashes, failures and a healthy scenario side by side, one scheduler.

    Every run that started is recorded exactly once in prober_scenario_runs_total, and
    the healthy scenario keeps its pace while the others misbehave.
    """
    config: Config = load_config(
        write_config(
            "scenarios:"
            + stub_scenario("healthy")
            + stub_scenario("fails", "http://stub.invalid/fail")
            # Room for the stub's start-up (it imports the protocol) before it hangs.
            + stub_scenario("hangs", "http://stub.invalid/hang").replace(
                "timeout: 10s", "timeout: 4s"
            )
            + stub_scenario("slow", "http://stub.invalid/sleep/0.5")
        )
    )
    registry = CollectorRegistry()
    metrics = ProberMetrics(
        registry, DEFAULT_SCENARIO_BUCKETS, DEFAULT_STEP_BUCKETS, DEFAULT_PAGE_TIMING_BUCKETS
    )
    metrics.configure(config.scenarios)
    history = await History.open(None, Retention(3600.0, 3600.0), lambda: None)
    recorder = CountingRecorder(metrics, history)
    runner = WorkerRunner("unused", [], Redactor(), command=[sys.executable, STUB_WORKER])
    scheduler = Scheduler(runner.run, recorder, max_concurrency=3, max_start_offset=0)

    def count(scenario: str, result: str) -> float:
        labels = {"scenario": scenario, "result": result}
        return registry.get_sample_value("prober_scenario_runs_total", labels) or 0

    scheduler.start(config.scenarios)
    try:
        await wait_until(lambda: count("hangs", "timeout") >= 3, within=60)
        assert count("healthy", "success") >= 3
        assert count("fails", "failure") >= 3
        assert scheduler.healthy()
    finally:
        await scheduler.stop(grace=15)
        await history.close()
    verdicts = [r for r in recorder.finished if r is not None]
    total = sum(count(s.name, outcome.value) for s in config.scenarios for outcome in Outcome)
    assert total == len(verdicts) == len(recorder.finished)
    assert {(r.scenario, r.result.value) for r in verdicts} == {
        ("healthy", "success"),
        ("fails", "failure"),
        ("hangs", "timeout"),
        ("slow", "success"),
    }
