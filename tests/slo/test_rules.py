"""The rule generator: what it counts, how it groups, and that its output is stable.

The math is proven by promtool (tests/alerts/slo_test.yaml, tests/deploy/test_slo_alerts.py)
and on a real Prometheus (tests/test_dashboard_prometheus.py); these tests pin the
choices a reader of the generated file relies on.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from prober.contracts.config import load_config
from prober.slo.rules import ALERT, BURN_RATE_ALERTS, error_ratio, objectives, render

CONFIG = """\
    scenarios:
      - name: zeta
        interval: 30s
        timeout: 10s
        slo: {objective: 99.9%, window: 30d}
        script: "asyncio:sleep"
      - name: alpha
        interval: 30s
        timeout: 10s
        slo:
          objective: 99.5%
          latency: {duration_under: 5s, objective: 95%}
        steps:
          - name: home
            slo: {objective: 99%, latency: {duration_under: 250ms, objective: 90%}}
            actions: [{goto: "http://127.0.0.1/"}]
    """


def rules_of(text: str) -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(text)["groups"] for r in g["rules"]]


def test_objectives_are_found_on_scenarios_and_steps_sorted(
    write_config: Callable[[str], Path],
) -> None:
    config = load_config(write_config(CONFIG))
    found = [(o.scenario, o.step, o.slo, str(o.target)) for o in objectives(config.scenarios)]
    assert found == [
        ("alpha", None, "availability", "0.995"),
        ("alpha", None, "latency", "0.95"),
        ("alpha", "home", "availability", "0.99"),
        ("alpha", "home", "latency", "0.9"),
        ("zeta", None, "availability", "0.999"),
    ]


def test_error_runs_are_neither_good_nor_valid_and_pods_are_summed_away(
    write_config: Callable[[str], Path],
) -> None:
    availability, latency, step_availability, step_latency, _ = objectives(
        load_config(write_config(CONFIG)).scenarios
    )
    expr = error_ratio(availability, "1h")
    assert 'result=~"failure|timeout"' in expr and 'result!="error"' in expr
    # Failed runs stay in the latency denominator: valid runs, not successful ones.
    assert 'le="5.0"' in error_ratio(latency, "1h")
    assert 'result!="error"' in error_ratio(latency, "1h")
    assert 'reason!="crash"' in error_ratio(step_availability, "1h")
    assert 'le="0.25"' in error_ratio(step_latency, "1h")
    for objective in (availability, latency, step_availability, step_latency):
        expr = error_ratio(objective, "5m")
        assert "pod" not in expr and "instance" not in expr
        assert "sum by (location, namespace, job, scenario" in expr


def test_every_objective_gets_its_windows_budget_and_four_alerts(
    write_config: Callable[[str], Path],
) -> None:
    text = render(load_config(write_config(CONFIG)).scenarios)
    groups = yaml.safe_load(text)["groups"]
    assert [g["name"] for g in groups] == [
        "prober-slo-alpha-availability",
        "prober-slo-alpha-latency",
        "prober-slo-alpha-home-availability",
        "prober-slo-alpha-home-latency",
        "prober-slo-zeta-availability",
    ]
    zeta = groups[-1]["rules"]
    records = [r["record"] for r in zeta if "record" in r]
    windows = ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"]
    assert records == [f"prober:slo_errors:ratio_rate{w}" for w in windows] + [
        "prober:slo_objective:ratio",
        "prober:slo_error_budget_remaining:ratio",
    ]
    assert zeta[-5]["expr"].endswith("/ 0.001")
    alerts = [r for r in zeta if "alert" in r]
    assert [(a["labels"]["severity"], a["labels"]["long_window"]) for a in alerts] == [
        ("critical", "1h"),
        ("critical", "6h"),
        ("warning", "1d"),
        ("warning", "3d"),
    ]
    assert len(alerts) == len(BURN_RATE_ALERTS)
    for alert in alerts:
        assert alert["alert"] == ALERT
        assert alert["labels"]["slo"] == "availability"
        assert alert["annotations"]["runbook_url"] == "README.md#probererrorbudgetburn"
    assert "(14.4 * 0.001)" in alerts[0]["expr"]
    step_alert = next(r for r in groups[2]["rules"] if "alert" in r)
    assert step_alert["labels"]["step"] == "home"


def test_output_is_deterministic_and_independent_of_file_order(
    write_config: Callable[[str], Path],
) -> None:
    forward = load_config(write_config(CONFIG)).scenarios
    assert render(forward) == render(forward)
    assert render(forward) == render(tuple(reversed(forward)))


def test_prometheusrule_wraps_the_same_groups(write_config: Callable[[str], Path]) -> None:
    scenarios = load_config(write_config(CONFIG)).scenarios
    manifest = yaml.safe_load(render(scenarios, "prometheusrule"))
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["spec"] == yaml.safe_load(render(scenarios, "rules"))


def test_no_slo_means_no_groups(write_config: Callable[[str], Path]) -> None:
    path = write_config(
        """\
        scenarios:
          - name: plain
            interval: 30s
            timeout: 10s
            steps: [{name: home, actions: [{goto: "http://127.0.0.1/"}]}]
        """
    )
    assert yaml.safe_load(render(load_config(path).scenarios)) == {"groups": []}
