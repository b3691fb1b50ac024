"""The runner's edge cases with tiny stub workers: exact, fast, no browser needed."""

import sys
import time
from pathlib import Path

import psutil
import pytest

from prober.contracts.config import Scenario
from prober.contracts.result import Outcome, Reason
from prober.contracts.secrets import Redactor
from prober.supervise.runner import WorkerRunner

STUB = Path(__file__).parents[1] / "stubs" / "worker_stub.py"
# The stubs import the protocol like the real worker, which costs about a second of
# start-up on a loaded machine: the run's timeout must leave room for it.
TIMEOUT = 4.0
SCENARIO = Scenario.model_validate(
    {
        "name": "stubbed",
        "interval": "1m",
        "timeout": f"{TIMEOUT:g}s",
        "steps": [{"name": "only", "actions": [{"goto": "http://127.0.0.1:9/"}]}],
    }
)


def stub_runner(mode: str, secrets: tuple[str, ...] = ()) -> WorkerRunner:
    return WorkerRunner(
        "/usr/bin/chromium", [], Redactor(secrets), command=[sys.executable, str(STUB), mode]
    )


def sleepers() -> list[psutil.Process]:
    return [
        p for p in psutil.process_iter(["name", "cmdline"]) if p.info["cmdline"] == ["sleep", "300"]
    ]


async def test_hang_is_killed_at_the_timeout_with_its_detached_grandchild() -> None:
    before = {p.pid for p in sleepers()}
    started = time.monotonic()
    result = await stub_runner("hang").run(SCENARIO)
    elapsed = time.monotonic() - started

    assert result.result is Outcome.TIMEOUT
    assert (result.failed_step, result.reason) == ("slow_step", Reason.TIMEOUT)
    assert [(s.name, s.ok) for s in result.steps] == [("first", True), ("slow_step", False)]
    assert elapsed < TIMEOUT + 8  # generous slack for a loaded machine
    assert not [p for p in sleepers() if p.pid not in before], "detached grandchild survived"


async def test_crash_mid_step_is_an_error_naming_the_step_and_signal() -> None:
    result = await stub_runner("crash").run(SCENARIO)

    assert result.result is Outcome.ERROR
    assert (result.failed_step, result.reason) == ("slow_step", Reason.CRASH)
    assert result.error and "SIGKILL" in result.error


async def test_garbage_then_clean_exit_is_an_error_quoting_the_output() -> None:
    result = await stub_runner("garbage").run(SCENARIO)

    assert result.result is Outcome.ERROR
    assert result.error and "exit code 0 without a result" in result.error
    assert "2 unparseable line(s)" in result.error
    assert "hello from a confused worker" in result.error


async def test_oversized_line_is_an_error_and_the_worker_is_killed() -> None:
    started = time.monotonic()
    result = await stub_runner("huge_line").run(SCENARIO)

    assert result.result is Outcome.ERROR
    assert result.error and "longer than" in result.error
    assert time.monotonic() - started < 10


async def test_stdout_flood_is_cut_short_as_our_error() -> None:
    started = time.monotonic()
    result = await stub_runner("flood").run(SCENARIO)

    # A worker spewing garbage is broken; it must not be waited out and blamed on the target.
    assert result.result is Outcome.ERROR
    assert (result.failed_step, result.reason) == ("slow_step", Reason.CRASH)
    assert result.error and "unparseable" in result.error
    assert time.monotonic() - started < 10


async def test_stderr_flood_does_not_block_the_worker() -> None:
    result = await stub_runner("stderr_flood").run(SCENARIO)

    assert result.result is Outcome.SUCCESS
    assert [s.name for s in result.steps] == ["only"]


async def test_worker_traceback_is_an_error_quoting_stderr() -> None:
    result = await stub_runner("traceback").run(SCENARIO)

    assert result.result is Outcome.ERROR
    assert result.error and "ValueError: boom in the worker" in result.error
    assert "exit code 1" in result.error


async def test_secrets_in_worker_output_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "hunter2&x y"
    monkeypatch.setenv("STUB_SECRET", secret)
    result = await stub_runner("secret_in_output", secrets=(secret,)).run(SCENARIO)

    assert result.result is Outcome.ERROR
    assert result.error and "password ********" in result.error
    assert secret not in result.error


async def test_unstartable_worker_is_an_error() -> None:
    runner = WorkerRunner("/usr/bin/chromium", [], Redactor(), command=["/nonexistent/python"])
    result = await runner.run(SCENARIO)

    assert result.result is Outcome.ERROR
    assert result.error and "cannot start worker" in result.error


async def test_reported_result_stands_when_the_exit_overruns_the_timeout() -> None:
    result = await stub_runner("slow_exit").run(SCENARIO)

    # The worker reported success; closing its browser past the deadline changes nothing.
    assert result.result is Outcome.SUCCESS
    assert result.duration_seconds == 0.02
