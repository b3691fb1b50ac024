"""Retries: each attempt is a run of its own, so flakiness stays visible in the metrics."""

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from prober.contracts.config import Scenario
from prober.contracts.result import Outcome
from prober.record.history import History, Retention
from prober.record.metrics import ProberMetrics
from prober.record.sinks import Recorder, RunLog
from prober.schedule.scheduler import ScenarioBusyError, Scheduler
from tests.fakes import FakeRun, NoScheduledRuns

RETENTION = Retention(3600.0, 7200.0)


def scenario(retries: int, interval: str = "1h") -> Scenario:
    return Scenario.model_validate(
        {
            "name": "login",
            "interval": interval,
            "timeout": "10s",
            "retries": retries,
            "steps": [{"name": "home", "actions": [{"goto": "http://127.0.0.1:9/"}]}],
        }
    )


async def run_once(
    fake: FakeRun, config: Scenario
) -> tuple[CollectorRegistry, list[tuple[str, int]]]:
    """One run (with its retries) through the real scheduler, recorder and history."""
    registry = CollectorRegistry()
    metrics = ProberMetrics(registry, (1.0, 10.0), (1.0, 10.0), (1.0, 10.0))
    metrics.configure([config])
    history = await History.open(None, RETENTION, lambda: None)
    scheduler = Scheduler(
        fake,
        Recorder([metrics, history, RunLog()]),
        1,
        max_start_offset=3600.0,
        rng=NoScheduledRuns(),
    )
    scheduler.start([config])
    try:
        await scheduler.run_now(config.name)
        runs = await history.runs()
    finally:
        await scheduler.stop(grace=5.0)
        await history.close()
    return registry, [(r.result.result.value, r.result.attempt) for r in reversed(runs)]


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, {"scenario": "login", **labels})
    assert value is not None, name
    return value


async def test_a_failure_then_success_counts_both_attempts() -> None:
    fake = FakeRun([Outcome.FAILURE, Outcome.SUCCESS])
    registry, runs = await run_once(fake, scenario(retries=2))
    assert runs == [("failure", 1), ("success", 2)]
    assert len(set(fake.calls)) == 2  # each attempt has its own run id
    assert sample(registry, "prober_scenario_runs_total", result="failure") == 1
    assert sample(registry, "prober_scenario_runs_total", result="success") == 1
    assert sample(registry, "prober_scenario_retries_total") == 1
    assert sample(registry, "prober_scenario_last_successful") == 1


async def test_retries_stop_after_n_and_the_last_attempt_decides() -> None:
    registry, runs = await run_once(FakeRun([Outcome.TIMEOUT]), scenario(retries=2))
    assert runs == [("timeout", 1), ("timeout", 2), ("timeout", 3)]
    assert sample(registry, "prober_scenario_runs_total", result="timeout") == 3
    assert sample(registry, "prober_scenario_retries_total") == 2
    assert sample(registry, "prober_scenario_last_successful") == 0


async def test_errors_are_not_retried() -> None:
    registry, runs = await run_once(FakeRun([Outcome.ERROR]), scenario(retries=3))
    assert runs == [("error", 1)]
    assert sample(registry, "prober_scenario_retries_total") == 0


async def test_no_retries_by_default() -> None:
    _, runs = await run_once(FakeRun([Outcome.FAILURE]), scenario(retries=0))
    assert runs == [("failure", 1)]


async def test_no_retry_once_the_interval_has_passed() -> None:
    """Retries must not push the schedule back by more than about one interval."""
    fake = FakeRun([Outcome.FAILURE], seconds=0.3)
    _, runs = await run_once(fake, scenario(retries=5, interval="200ms"))
    assert runs == [("failure", 1)]


async def test_retries_hold_the_scenario_lock() -> None:
    """The retry holds the scenario's lock: an on-demand run meanwhile is refused."""
    fake = FakeRun([Outcome.FAILURE, Outcome.SUCCESS])
    fake.hold(1)  # the retry
    config = scenario(retries=1)
    history = await History.open(None, RETENTION, lambda: None)
    registry = CollectorRegistry()
    scheduler = Scheduler(
        fake,
        Recorder([ProberMetrics(registry, (1,), (1,), (1,)), history, RunLog()]),
        1,
        3600,
        NoScheduledRuns(),
    )
    scheduler.start([config])
    first = asyncio.create_task(scheduler.run_now("login"))
    await asyncio.wait_for(fake.held.wait(), 10)
    with pytest.raises(ScenarioBusyError):
        await scheduler.run_now("login")
    fake.release.set()
    result = await first
    assert result is not None and result.attempt == 2 and result.ok
    await scheduler.stop(grace=5.0)
    await history.close()
