"""Alert and recording rules: promtool checks and unit tests, one source of truth.

The rules live in deploy/prometheus/rules.yaml; deploy/k8s/base/prometheusrule.yaml is
generated from it. tests/alerts/prober_test.yaml holds promtool unit tests with fire
and no-fire cases for every alert (tests/deploy/test_dashboard_prometheus.py also evaluates
every rule expression against a real Prometheus scraping a real prober).
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/rules.yaml"
PROMETHEUS_RULE = ROOT / "deploy/k8s/base/prometheusrule.yaml"
SCRAPE_CONFIG = ROOT / "deploy/prometheus/scrape-config.yaml"
UNIT_TESTS = ROOT / "tests/alerts/prober_test.yaml"
DOCS = ROOT / "README.md"


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool not found; install it with: apt-get install -y prometheus")
    return found


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, cwd=ROOT
    )


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def test_rules_are_valid() -> None:
    proc = run(promtool(), "check", "rules", RULES)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_pass() -> None:
    proc = run(promtool(), "test", "rules", UNIT_TESTS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_prometheus_rule_is_generated_from_rules_file() -> None:
    rule = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"] == yaml.safe_load(RULES.read_text()), (
        "deploy/k8s/base/prometheusrule.yaml differs from deploy/prometheus/rules.yaml: "
        "run python deploy/tools/sync_rules.py"
    )
    proc = run(sys.executable, ROOT / "deploy/tools/sync_rules.py", "--check")
    assert proc.returncode == 0, proc.stderr


EXPECTED_ALERTS = {
    "ProberTargetDown": "critical",
    "ProberComponentDown": "critical",
    "ProberReplicaFailing": "warning",
    "ProberRunErrors": "warning",
    "ProberStale": "critical",
    "ProberScrapeFailing": "critical",
    "ProberAbsent": "critical",
    "ProberStepSlow": "warning",
    "ProberScenarioSlow": "warning",
    "ProberCertificateExpiringSoon": "warning",
    "ProberCertificateExpiring": "critical",
    "ProberConfigReloadFailed": "warning",
    "ProberHistoryDegraded": "warning",
    "ProberBrowserCrashing": "warning",
}


def test_every_alert_is_documented_and_labelled() -> None:
    docs = DOCS.read_text()
    found = {a["alert"]: a for a in alerts()}
    assert {k: v["labels"]["severity"] for k, v in found.items()} == EXPECTED_ALERTS
    for name, rule in found.items():
        ann = rule["annotations"]
        assert ann.get("summary") and ann.get("description"), name
        assert ann["runbook_url"] == f"README.md#{name.lower()}", name
        # A runbook heading whose anchor is the alert's name, lower-cased.
        assert re.search(rf"^#+ {name}$", docs, re.M), f"no runbook section for {name}"
        assert f"| {name} |" in docs, f"{name} missing from the Alerts table"


def test_every_alert_has_fire_and_no_fire_unit_tests() -> None:
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    fired: set[str] = set()
    silent: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else silent).add(check["alertname"])
    assert fired >= set(EXPECTED_ALERTS), f"never fired: {set(EXPECTED_ALERTS) - fired}"
    assert silent >= set(EXPECTED_ALERTS), f"never silent: {set(EXPECTED_ALERTS) - silent}"
    two_replica_cases = [
        c
        for c in tests
        if any(
            'pod="pod-b"' in s["series"] and "last_successful" in s["series"]
            for s in c["input_series"]
        )
    ]
    assert two_replica_cases, "no unit test with two replicas"


def test_plain_prometheus_scrape_config_is_valid(tmp_path: Path) -> None:
    """promtool accepts the scrape config.

    Debian's prometheus is built without Kubernetes service discovery, so its promtool
    rejects kubernetes_sd_configs; the check swaps that block for an equivalent
    static_configs and validates everything else (relabelling, rule_files) as shipped.
    The relabelling itself runs for real in tests/deploy/test_dashboard_prometheus.py.
    """
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "prober", "the alerts select job=prober"
    assert job["kubernetes_sd_configs"][0]["role"] == "pod"
    local = copy.deepcopy(config)
    del local["scrape_configs"][0]["kubernetes_sd_configs"]
    local["scrape_configs"][0]["static_configs"] = [{"targets": ["127.0.0.1:8080"]}]
    local["rule_files"] = [str(RULES)]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(local))
    proc = run(promtool(), "check", "config", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    relabelled = {r.get("target_label") for r in job["relabel_configs"]}
    assert {"namespace", "pod"} <= relabelled, "alerts and dashboard need namespace and pod"
