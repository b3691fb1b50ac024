"""Write the generated rule files in deploy/ from their sources.

- deploy/k8s/base/prometheusrule.yaml from deploy/prometheus/rules.yaml: rules.yaml is
  the one source of truth for prober's own alerting and recording rules; the
  PrometheusRule (Prometheus Operator) carries the same groups under `spec`. The text is
  copied indented, so comments survive.
- deploy/prometheus/slo-rules.yaml and deploy/k8s/base/slo-prometheusrule.yaml from the
  `slo:` blocks of deploy/k8s/base/scenarios.yaml, by `prober rules`.

tests/deploy/test_alerts.py and tests/deploy/test_slo_alerts.py check all of them are current.

    python deploy/tools/sync_rules.py          # rewrite
    python deploy/tools/sync_rules.py --check  # exit 1 if out of date
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/rules.yaml"
PROMETHEUS_RULE = ROOT / "deploy/k8s/base/prometheusrule.yaml"
SCENARIOS = "deploy/k8s/base/scenarios.yaml"
SLO_RULES = ROOT / "deploy/prometheus/slo-rules.yaml"
SLO_PROMETHEUS_RULE = ROOT / "deploy/k8s/base/slo-prometheusrule.yaml"

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


def render_all() -> dict[Path, str]:
    """Every generated file and the text it should have."""
    sys.path.insert(0, str(ROOT))
    from prober.slo.rules import generate

    # The scenario file's path appears in the generated header: keep it relative.
    os.chdir(ROOT)
    return {
        PROMETHEUS_RULE: render(),
        SLO_RULES: generate(SCENARIOS, "rules"),
        SLO_PROMETHEUS_RULE: generate(SCENARIOS, "prometheusrule"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, do not write")
    args = parser.parse_args()
    stale = []
    for path, text in render_all().items():
        if not path.exists() or path.read_text() != text:
            stale.append(path)
            if not args.check:
                path.write_text(text)
    if args.check and stale:
        for path in stale:
            print(f"{path} is out of date: run python {__file__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
