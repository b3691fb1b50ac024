"""Write deploy/k8s/base/prometheusrule.yaml from deploy/prometheus/rules.yaml.

rules.yaml is the one source of truth for prober's alerting and recording rules; the
PrometheusRule (Prometheus Operator) carries the same groups under `spec`. The text is
copied indented, so comments survive; tests/deploy/test_alerts.py checks both stay equal.

    python deploy/tools/sync_rules.py          # rewrite
    python deploy/tools/sync_rules.py --check  # exit 1 if out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/rules.yaml"
PROMETHEUS_RULE = ROOT / "deploy/k8s/base/prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/rules.yaml by deploy/tools/sync_rules.py: edit that
# file, then run the script. For the Prometheus Operator; if its ruleSelector needs a
# label (e.g. release: kube-prometheus-stack), add it with a kustomize overlay.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: prober
  labels:
    app.kubernetes.io/name: prober
spec:
"""


def render() -> str:
    """The PrometheusRule text for the current rules.yaml."""
    lines = RULES.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    body = ["  " + line if line.strip() else "" for line in lines[start:]]
    return HEADER + "\n".join(body) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, do not write")
    args = parser.parse_args()
    text = render()
    if args.check:
        if PROMETHEUS_RULE.read_text() != text:
            print(f"{PROMETHEUS_RULE} is out of date: run {__file__}", file=sys.stderr)
            return 1
        return 0
    PROMETHEUS_RULE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
