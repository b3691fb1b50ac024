"""The generated SLO rules in deploy/: current, valid, and right (promtool unit tests).

deploy/prometheus/slo-rules.yaml and deploy/k8s/base/slo-prometheusrule.yaml are
`prober rules` output for deploy/k8s/base/scenarios.yaml; tests/alerts/slo_test.yaml
proves their math with promtool (fast burn pages, slow burn opens a ticket, a blip fires
nothing, result=error runs burn nothing, budget remaining matches a hand computation).
tests/test_dashboard_prometheus.py evaluates them on a real Prometheus scraping real
`prober serve` replicas.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from prober.slo.rules import generate
from tests.deploy.test_alerts import promtool, run

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = "deploy/k8s/base/scenarios.yaml"
SLO_RULES = ROOT / "deploy/prometheus/slo-rules.yaml"
SLO_PROMETHEUS_RULE = ROOT / "deploy/k8s/base/slo-prometheusrule.yaml"
UNIT_TESTS = ROOT / "tests/alerts/slo_test.yaml"
REGENERATE = "python deploy/tools/sync_rules.py"


def test_committed_rules_are_generated_from_the_example_scenarios() -> None:
    # The very command users run; from the repository root, as the header names the file.
    proc = run(sys.executable, "-m", "prober", "rules", "--config", SCENARIOS)
    assert proc.returncode == 0, proc.stderr
    assert SLO_RULES.read_text() == proc.stdout, f"{SLO_RULES} is stale: run {REGENERATE}"
    proc = run(sys.executable, ROOT / "deploy/tools/sync_rules.py", "--check")
    assert proc.returncode == 0, f"stale rules: run {REGENERATE}\n{proc.stderr}"


def test_prometheus_rule_carries_the_same_groups() -> None:
    manifest = yaml.safe_load(SLO_PROMETHEUS_RULE.read_text())
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["metadata"]["name"] == "prober-slo"
    assert manifest["spec"] == yaml.safe_load(SLO_RULES.read_text())


def test_rules_are_valid() -> None:
    proc = run(promtool(), "check", "rules", SLO_RULES)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_pass() -> None:
    proc = run(promtool(), "test", "rules", UNIT_TESTS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_demo_scenarios_generate_valid_rules(tmp_path: Path) -> None:
    out = tmp_path / "demo-slo.yaml"
    out.write_text(generate(ROOT / "prober/demo/scenarios.yaml"))
    proc = run(promtool(), "check", "rules", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'le="0.75"' in out.read_text(), "the step's 750ms threshold is its own bucket"
