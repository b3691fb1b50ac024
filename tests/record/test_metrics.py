"""ProberMetrics semantics that alerts and dashboards depend on."""

import time

from prometheus_client import CollectorRegistry

from prober.contracts.config import Scenario
from prober.contracts.protocol import MAX_CERTIFICATE_HOSTS
from prober.contracts.result import Certificate, Outcome, Reason, RunResult, StepResult
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
    failures = {"scenario": "login", "step": "home", "reason": "crash", "component": "app"}
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


def sso_scenario() -> Scenario:
    return Scenario.model_validate(
        {
            "name": "sso",
            "interval": "1m",
            "timeout": "30s",
            "component": "web",
            "steps": [
                {"name": "home", "actions": [{"goto": "http://127.0.0.1/"}]},
                {"name": "login", "component": "idp", "actions": [{"click": "#go"}]},
                {"name": "back", "actions": [{"wait_for": "#done"}]},
            ],
        }
    )


def test_component_durations_add_up_to_the_run_and_time_outside_steps_is_the_scenarios() -> None:
    registry, metrics = fresh()
    metrics.configure([sso_scenario()])
    steps = (
        StepResult("home", 0.25, True, "web"),
        StepResult("login", 1.5, True, "idp"),
        StepResult("back", 0.5, True, "web"),
    )
    metrics.record(
        RunResult("sso", "run-1", Outcome.SUCCESS, 2.5, time.time(), steps), ended_at=time.time()
    )

    def last(component: str) -> float | None:
        return registry.get_sample_value(
            "prober_component_last_duration_seconds", {"scenario": "sso", "component": component}
        )

    assert last("idp") == 1.5
    assert last("web") == 1.0  # 0.25 + 0.5 in steps, 0.25 between them
    assert last("app") is None  # the scenario's own component is `web` here
    assert (last("idp") or 0) + (last("web") or 0) == registry.get_sample_value(
        "prober_scenario_last_duration_seconds", {"scenario": "sso"}
    )
    count = registry.get_sample_value(
        "prober_component_duration_seconds_count", {"scenario": "sso", "component": "idp"}
    )
    assert count == 1


def test_a_failed_step_counts_against_its_component_and_leaves_component_durations() -> None:
    registry, metrics = fresh()
    metrics.configure([sso_scenario()])
    steps = (StepResult("home", 0.25, True, "web"), StepResult("login", 5.0, False, "idp"))
    failed = RunResult(
        "sso", "run-2", Outcome.FAILURE, 5.25, time.time(), steps, "login", Reason.SELECTOR
    )
    metrics.record(failed, ended_at=time.time())
    failures = {"scenario": "sso", "step": "login", "reason": "selector", "component": "idp"}
    assert registry.get_sample_value("prober_step_failures_total", failures) == 1
    assert (
        registry.get_sample_value(
            "prober_component_duration_seconds_count", {"scenario": "sso", "component": "idp"}
        )
        is None
    )
    for component, ok in (("web", 1), ("idp", 0)):
        labels = {"scenario": "sso", "component": component}
        assert registry.get_sample_value("prober_component_last_successful", labels) == ok
    metrics.forget("sso")
    assert registry.get_sample_value("prober_step_failures_total", failures) is None
    assert (
        registry.get_sample_value(
            "prober_component_last_successful", {"scenario": "sso", "component": "idp"}
        )
        is None
    )


def test_certificate_hosts_are_capped_and_dropped_once_a_successful_run_leaves_them() -> None:
    registry, metrics = fresh()
    expiry = "prober_tls_certificate_expiry_timestamp_seconds"

    def run(outcome: Outcome, *hosts: str) -> None:
        certificates = tuple(Certificate(host, 2e9 + n) for n, host in enumerate(hosts))
        metrics.record(
            RunResult("sso", "r", outcome, 1.0, 0.0, certificates=certificates), ended_at=1.0
        )

    def hosts() -> set[str]:
        return {
            sample.labels["host"]
            for family in registry.collect()
            if family.name == expiry
            for sample in family.samples
        }

    many = [f"h{n}.example" for n in range(MAX_CERTIFICATE_HOSTS + 3)]
    run(Outcome.SUCCESS, *many)
    assert hosts() == set(many[:MAX_CERTIFICATE_HOSTS])
    assert registry.get_sample_value(expiry, {"scenario": "sso", "host": "h0.example"}) == 2e9
    # A failed run may have stopped before the IdP: nothing is dropped.
    run(Outcome.FAILURE, "app.example")
    assert hosts() == set(many[:MAX_CERTIFICATE_HOSTS])
    # A successful run went through the whole flow: hosts it did not visit are gone.
    run(Outcome.SUCCESS, "app.example", "idp.example")
    assert hosts() == {"app.example", "idp.example"}
    metrics.forget("sso")
    assert hosts() == set()


def versions(metrics: ProberMetrics) -> dict[object, int]:
    return {key: version for key, version, _ in metrics.sections()}


def test_an_update_moves_only_the_version_of_the_section_it_wrote() -> None:
    _, metrics = fresh()
    metrics.record(success("a"), ended_at=1.0)
    metrics.record(success("b"), ended_at=1.0)
    before = versions(metrics)
    metrics.record(success("b"), ended_at=2.0)
    after = versions(metrics)
    assert list(after) == [("template",), ("scenario", "a"), ("scenario", "b"), ("shared",)]
    assert [key for key in after if after[key] != before[key]] == [("scenario", "b")]
    metrics.set_history_degraded(True)
    assert [key for key, v in versions(metrics).items() if v != after[key]] == [("shared",)]


def test_a_forgotten_scenario_loses_its_section_and_comes_back_with_a_new_version() -> None:
    registry, metrics = fresh()
    metrics.record(success("a"), ended_at=1.0)
    old = versions(metrics)[("scenario", "a")]
    metrics.forget("a")
    assert ("scenario", "a") not in versions(metrics)
    assert registry.get_sample_value("prober_scenario_runs_total", RUNS_A) is None
    # A run of the old definition still in flight ends after the reload: counted anew.
    metrics.record(success("a"), ended_at=2.0)
    assert versions(metrics)[("scenario", "a")] > old
    assert registry.get_sample_value("prober_scenario_runs_total", RUNS_A) == 1


def test_the_sections_hold_every_series_the_registry_collects() -> None:
    registry, metrics = fresh()
    metrics.configure([sso_scenario()])
    metrics.record(success("a"), ended_at=1.0)
    metrics.set_build_info("1.0", "1.50", "140")
    whole = {
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for family in registry.collect()
        for sample in family.samples
    }
    parts = {
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for _, _, section in metrics.sections()
        for family in section.collect()
        for sample in family.samples
    }
    assert whole == parts
    assert (
        "prober_build_info",
        (("browser_version", "140"), ("playwright_version", "1.50"), ("version", "1.0")),
        1.0,
    ) in parts


RUNS_A = {"scenario": "a", "result": "success"}


def success(scenario: str) -> RunResult:
    steps = (StepResult("home", 0.3, True), StepResult("login", 0.5, True))
    return RunResult(scenario, "r", Outcome.SUCCESS, 0.8, 0.0, steps)
