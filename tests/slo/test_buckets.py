"""A latency objective's threshold becomes a histogram boundary, in the exported `le`."""

from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from prober.contracts.config import load_config
from prober.contracts.result import Outcome, RunResult, StepResult
from prober.record.metrics import ProberMetrics
from prober.settings import (
    DEFAULT_PAGE_TIMING_BUCKETS,
    DEFAULT_SCENARIO_BUCKETS,
    DEFAULT_STEP_BUCKETS,
)
from prober.slo import buckets

CONFIG = """\
    scenarios:
      - name: login
        interval: 30s
        timeout: 10s
        slo: {latency: {duration_under: 4s, objective: 95%}}
        steps:
          - name: home
            slo: {latency: {duration_under: 750ms, objective: 99%}}
            actions: [{goto: "http://127.0.0.1/"}]
          - name: done
            slo: {latency: {duration_under: 1s, objective: 99%}}
            actions: [{goto: "http://127.0.0.1/done"}]
    """


def test_thresholds_are_added_once_and_sorted(write_config: Callable[[str], Path]) -> None:
    config = load_config(write_config(CONFIG))
    scenario_level, step_level = buckets.thresholds(config.scenarios)
    assert (scenario_level, step_level) == ({4.0}, {0.75, 1.0})
    step = buckets.with_thresholds(DEFAULT_STEP_BUCKETS, step_level)
    assert 0.75 in step and step == tuple(sorted(set(step))) and len(step) == 14
    assert buckets.missing(config.scenarios, DEFAULT_SCENARIO_BUCKETS, step) == [4.0]
    assert buckets.missing(config.scenarios, (4.0,), step) == []


def test_the_rules_le_matches_what_the_registry_exports(
    write_config: Callable[[str], Path],
) -> None:
    config = load_config(write_config(CONFIG))
    scenario_level, step_level = buckets.thresholds(config.scenarios)
    registry = CollectorRegistry()
    metrics = ProberMetrics(
        registry,
        buckets.with_thresholds(DEFAULT_SCENARIO_BUCKETS, scenario_level),
        buckets.with_thresholds(DEFAULT_STEP_BUCKETS, step_level),
        DEFAULT_PAGE_TIMING_BUCKETS,
    )
    result = RunResult(
        scenario="login",
        run_id="r1",
        result=Outcome.SUCCESS,
        duration_seconds=3.9,
        started_at=0.0,
        steps=(StepResult(name="home", duration_seconds=0.7, ok=True),),
    )
    metrics.record(result, ended_at=1.0)
    text = generate_latest(registry).decode()
    assert 'prober_scenario_duration_seconds_bucket{le="4.0",scenario="login"} 1.0' in text
    assert 'prober_step_duration_seconds_bucket{le="0.75",scenario="login",step="home"} 1.0' in text
