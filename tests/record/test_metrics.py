"""ProberMetrics semantics that alerts and dashboards depend on."""

import time

from prometheus_client import CollectorRegistry

from prober.contracts.config import Scenario
from prober.contracts.result import Outcome, Reason, RunResult, StepResult
from prober.record.metrics import ProberMetrics
from prober.settings import (
    DEFAULT_PAGE_TIMING_BUCKETS,
    DEFAULT_SCENARIO_BUCKETS,
    DEFAULT_STEP_BUCKETS,
)


def fresh() -> tuple[CollectorRegistry, ProberMetrics]:
    registry = CollectorRegistry()
    return registry, ProberMetrics(
        registry, DEFAULT_SCENARIO_BUCKETS, DEFAULT_STEP_BUCKETS, DEFAULT_PAGE_TIMING_BUCKETS
    )


def test_a_crash_counts_as_a_step_failure_but_not_against_the_target() -> None:
    registry, metrics = fresh()
    metrics.record(
        RunResult(
            "login",
            "run-c",
            Outcome.ERROR,
            1.0,
            time.time(),
            (StepResult("home", 1.0, False),),
            failed_step="home",
            reason=Reason.CRASH,
        ),
        ended_at=time.time(),
    )
    failures = {"scenario": "login", "step": "home", "reason": "crash"}
    assert registry.get_sample_value("prober_step_failures_total", failures) == 1
    assert (
        registry.get_sample_value("prober_scenario_last_successful", {"scenario": "login"}) is None
    )


def test_reconfiguring_does_not_hide_a_run_in_flight() -> None:
    registry, metrics = fresh()
    scenario = Scenario.model_validate(
        {
            "name": "login",
            "interval": "1m",
            "timeout": "30s",
            "steps": [{"name": "home", "actions": [{"goto": "http://127.0.0.1/"}]}],
        }
    )
    metrics.configure([scenario])
    assert registry.get_sample_value("prober_scenario_running", {"scenario": "login"}) == 0
    metrics.run_started("login", "r1")
    metrics.configure([scenario.model_copy(update={"interval": 120.0})])  # a live reload
    assert registry.get_sample_value("prober_scenario_running", {"scenario": "login"}) == 1
