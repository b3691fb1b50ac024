"""Generate dashboards/grafana.json, the importable Grafana dashboard for prober.

Plain Python, no dependency: the dashboard is small, and one helper per panel type keeps
every panel consistent (datasource variable, selectors, units). Edit this file, then

    python dashboards/generate.py

tests/deploy/test_dashboard_prometheus.py fails when grafana.json is out of date, and runs every
query in it against a real Prometheus scraping a real `prober serve`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("grafana.json")
DS = {"type": "prometheus", "uid": "${datasource}"}
# Every panel filters by the three dashboard variables.
SEL = 'location=~"$location", namespace=~"$namespace", pod=~"$pod", scenario=~"$scenario"'

Panel = dict[str, Any]


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {
        "datasource": DS,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "refId": ref,
        "range": not instant,
        "instant": instant,
    }
    if instant:
        t["format"] = "table"
    return t


def panel(
    kind: str,
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    unit: str = "short",
    **extra: Any,
) -> Panel:
    p: Panel = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    p.update(extra)
    return p


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def quantiles(metric: str, by: str, legend: str) -> list[dict[str, Any]]:
    return [
        target(
            f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{SEL}}}[$window])))",
            f"{legend} p{int(q * 100)}",
            ref,
        )
        for q, ref in ((0.5, "A"), (0.95, "B"))
    ]


# SLO series (from `prober rules`) are summed across replicas: no pod to select.
SLO_SEL = 'location=~"$location", namespace=~"$namespace", scenario=~"$scenario"'
OBJECTIVE = 'prober:slo_objective:ratio{scenario=~"$scenario"}'
BURN_WINDOWS = ("5m", "30m", "1h", "6h", "1d", "3d")


def slo_panels() -> list[tuple[Panel, int, int]]:
    """A row per scenario (repeated over $scenario) with its objectives' state."""
    slo_row = row("SLO: $scenario")
    slo_row["repeat"] = "scenario"
    percent_steps = {
        "mode": "absolute",
        "steps": [
            {"color": "red", "value": None},
            {"color": "orange", "value": 0},
            {"color": "green", "value": 0.25},
        ],
    }
    return [
        (slo_row, 24, 1),
        (
            panel(
                "timeseries",
                "SLI vs objective",
                "Share of valid runs that were good over the last day (result=error runs are "
                "not counted), per objective, and the objective itself. Needs the rules from "
                "`prober rules`; empty for scenarios without an slo block.",
                [
                    target(
                        f"1 - prober:slo_errors:ratio_rate1d{{{SLO_SEL}}}",
                        "{{slo}} {{step}} SLI (1d)",
                    ),
                    target(OBJECTIVE, "{{slo}} {{step}} objective", "B"),
                ],
                unit="percentunit",
            ),
            10,
            8,
        ),
        (
            panel(
                "stat",
                "Error budget remaining",
                "Share of the SLO window's error budget left: 100% untouched, 0 spent, "
                "negative = the objective is missed.",
                [
                    target(
                        f"prober:slo_error_budget_remaining:ratio{{{SLO_SEL}}}",
                        "{{slo}} {{step}}",
                    )
                ],
                unit="percentunit",
                fieldConfig={
                    "defaults": {
                        "unit": "percentunit",
                        "color": {"mode": "thresholds"},
                        "thresholds": percent_steps,
                    },
                    "overrides": [],
                },
            ),
            4,
            8,
        ),
        (
            panel(
                "bargauge",
                "Burn rate per window",
                "Error ratio over each window divided by the error budget: 1 spends the "
                "budget exactly over the SLO window. Pages at 14.4 (1h and 5m) and 6 (6h and "
                "30m), tickets at 3 (1d and 2h) and 1 (3d and 6h).",
                [
                    target(
                        f"prober:slo_errors:ratio_rate{w}{{{SLO_SEL}}} "
                        "/ on (scenario, slo, step) group_left () "
                        f"(1 - {OBJECTIVE})",
                        f"{{{{slo}}}} {{{{step}}}} {w}",
                        chr(ord("A") + i),
                        instant=True,
                    )
                    for i, w in enumerate(BURN_WINDOWS)
                ],
                fieldConfig={
                    "defaults": {
                        "color": {"mode": "thresholds"},
                        "thresholds": {
                            "mode": "absolute",
                            "steps": [
                                {"color": "green", "value": None},
                                {"color": "yellow", "value": 1},
                                {"color": "orange", "value": 6},
                                {"color": "red", "value": 14.4},
                            ],
                        },
                    },
                    "overrides": [],
                },
                options={"displayMode": "gradient", "orientation": "horizontal"},
            ),
            5,
            8,
        ),
        (
            panel(
                "table",
                "SLO alerts firing",
                "ProberErrorBudgetBurn alerts firing now: severity critical pages, warning "
                "opens a ticket. Runbook: README, ProberErrorBudgetBurn.",
                [
                    target(
                        "sum by (slo, step, severity, long_window) "
                        '(ALERTS{alertname="ProberErrorBudgetBurn", alertstate="firing", '
                        f"{SLO_SEL}}})",
                        instant=True,
                    )
                ],
            ),
            5,
            8,
        ),
    ]


OK_FAIL = [
    {
        "type": "value",
        "options": {
            "0": {"text": "FAIL", "color": "red", "index": 0},
            "1": {"text": "OK", "color": "green", "index": 1},
        },
    }
]


def panels() -> list[tuple[Panel, int, int]]:
    """(panel, width, height) in reading order; rows take the full width."""
    return [
        (row("Now"), 24, 1),
        (
            panel(
                "state-timeline",
                "Success state by scenario and replica",
                "prober_scenario_last_successful per replica: red where a replica's last run "
                "failed. All replicas red for a scenario = the target is down; one red = that "
                "replica is sick.",
                [
                    target(
                        f"max by (scenario, pod) (prober_scenario_last_successful{{{SEL}}})",
                        "{{scenario}} @ {{pod}}",
                    )
                ],
                fieldConfig={
                    "defaults": {
                        "mappings": OK_FAIL,
                        "color": {"mode": "thresholds"},
                        "thresholds": {
                            "mode": "absolute",
                            "steps": [
                                {"color": "red", "value": None},
                                {"color": "green", "value": 1},
                            ],
                        },
                    },
                    "overrides": [],
                },
                options={"showValue": "never", "mergeValues": True},
            ),
            16,
            8,
        ),
        (
            panel(
                "stat",
                "Time since last success",
                "Seconds since each scenario last succeeded, per replica.",
                [
                    target(
                        f"time() - max by (scenario, pod) "
                        f"(prober_scenario_last_success_timestamp_seconds{{{SEL}}})",
                        "{{scenario}} @ {{pod}}",
                    )
                ],
                unit="s",
                options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
            ),
            8,
            8,
        ),
        (
            panel(
                "stat",
                "Time since last run",
                "Seconds since each replica last finished a run that reached the target. "
                "Growing without bound = that prober stopped probing (ProberStale).",
                [
                    target(
                        f"time() - max by (scenario, pod) "
                        f"(prober_scenario_last_run_timestamp_seconds{{{SEL}}})",
                        "{{scenario}} @ {{pod}}",
                    )
                ],
                unit="s",
                options={"reduceOptions": {"calcs": ["lastNotNull"]}},
            ),
            12,
            5,
        ),
        (
            panel(
                "stat",
                "Browsers running",
                "Runs in progress per replica (at most PROBER_MAX_CONCURRENCY).",
                [target(f"sum by (pod) (prober_scenario_running{{{SEL}}})", "{{pod}}")],
                options={"reduceOptions": {"calcs": ["lastNotNull"]}},
            ),
            12,
            5,
        ),
        (row("Results"), 24, 1),
        (
            panel(
                "timeseries",
                "Success ratio",
                "Successful runs / runs that reached the target (success, failure, timeout) "
                "over $window, all replicas together. result=error runs are the prober's own "
                "problem and are left out.",
                [
                    target(
                        f"sum by (scenario) (increase(prober_scenario_runs_total{{{SEL}, "
                        f'result="success"}}[$window])) / sum by (scenario) '
                        f"(increase(prober_scenario_runs_total{{{SEL}, "
                        f'result!="error"}}[$window]))',
                        "{{scenario}}",
                    )
                ],
                unit="percentunit",
                fieldConfig={
                    "defaults": {"unit": "percentunit", "min": 0, "max": 1},
                    "overrides": [],
                },
            ),
            12,
            8,
        ),
        (
            panel(
                "timeseries",
                "Runs by result",
                "Runs per $window by result. error = the prober's environment failed "
                "(ProberRunErrors), not the target.",
                [
                    target(
                        f"sum by (scenario, result) "
                        f"(increase(prober_scenario_runs_total{{{SEL}}}[$window]))",
                        "{{scenario}} {{result}}",
                    )
                ],
                fieldConfig={
                    "defaults": {"custom": {"stacking": {"mode": "normal"}, "drawStyle": "bars"}},
                    "overrides": [],
                },
            ),
            12,
            8,
        ),
        (
            panel(
                "timeseries",
                "Failures by step and reason",
                "Failed steps per $window: which step broke, and how (timeout, navigation, "
                "selector, assertion, script, crash).",
                [
                    target(
                        f"sum by (scenario, step, reason) "
                        f"(increase(prober_step_failures_total{{{SEL}}}[$window]))",
                        "{{scenario}} / {{step}}: {{reason}}",
                    )
                ],
            ),
            12,
            8,
        ),
        (
            panel(
                "table",
                "Failures in the time range",
                "Failed steps over the dashboard's time range, most frequent first.",
                [
                    target(
                        f"sort_desc(sum by (scenario, step, reason) "
                        f"(increase(prober_step_failures_total{{{SEL}}}[$__range])))",
                        instant=True,
                    )
                ],
            ),
            12,
            8,
        ),
        (row("Durations"), 24, 1),
        (
            panel(
                "timeseries",
                "Scenario duration",
                "Successful runs: p50 and p95 over $window from the histogram, and the last "
                "run's duration per replica (any run that reached the target).",
                [
                    *quantiles("prober_scenario_duration_seconds", "scenario", "{{scenario}}"),
                    target(
                        f"prober_scenario_last_duration_seconds{{{SEL}}}",
                        "{{scenario}} last @ {{pod}}",
                        "C",
                    ),
                ],
                unit="s",
            ),
            12,
            8,
        ),
        (
            panel(
                "timeseries",
                "Step duration p50 / p95",
                "Per step, over $window, from prober_step_duration_seconds.",
                quantiles(
                    "prober_step_duration_seconds", "scenario, step", "{{scenario}} / {{step}}"
                ),
                unit="s",
            ),
            12,
            8,
        ),
        (
            panel(
                "bargauge",
                "Step duration, last run",
                "Each step's duration in the last run where it finished, per replica.",
                [
                    target(
                        f"prober_step_last_duration_seconds{{{SEL}}}",
                        "{{scenario}} / {{step}} @ {{pod}}",
                        instant=True,
                    )
                ],
                unit="s",
                options={"displayMode": "gradient", "orientation": "horizontal"},
            ),
            12,
            8,
        ),
        (
            panel(
                "timeseries",
                "Page timings p95",
                "Per step, p95 over $window of each page phase, from navigation start: "
                "ttfb, dom_content_loaded, load, first/largest contentful paint.",
                [
                    target(
                        "histogram_quantile(0.95, sum by (scenario, step, phase, le) "
                        f"(rate(prober_page_timing_seconds_bucket{{{SEL}}}[$window])))",
                        "{{scenario}} / {{step}} {{phase}}",
                    )
                ],
                unit="s",
            ),
            12,
            8,
        ),
        (row("Components"), 24, 1),
        (
            panel(
                "timeseries",
                "Total vs total without $component",
                "Mean duration of successful runs over $window, all replicas: the whole "
                "run, and the run without the time spent in $component's steps (e.g. the "
                "identity provider). The gap is that component's share; a slow sign-in with "
                "a flat 'without' line is that component's problem.",
                [
                    target(
                        f"sum by (scenario) "
                        f"(rate(prober_component_duration_seconds_sum{{{SEL}}}[$window])) / "
                        f"sum by (scenario) "
                        f"(rate(prober_scenario_duration_seconds_count{{{SEL}}}[$window]))",
                        "{{scenario}} total",
                    ),
                    target(
                        f"sum by (scenario) (rate(prober_component_duration_seconds_sum"
                        f'{{{SEL}, component!~"$component"}}[$window])) / '
                        f"sum by (scenario) "
                        f"(rate(prober_scenario_duration_seconds_count{{{SEL}}}[$window]))",
                        "{{scenario}} without $component",
                        "B",
                    ),
                ],
                unit="s",
            ),
            12,
            8,
        ),
        (
            panel(
                "timeseries",
                "Component duration p50 / p95",
                "Per component of each scenario, over $window, from "
                "prober_component_duration_seconds (successful runs; a run's components "
                "add up to its duration).",
                quantiles(
                    "prober_component_duration_seconds",
                    "scenario, component",
                    "{{scenario}} / {{component}}",
                ),
                unit="s",
            ),
            12,
            8,
        ),
        (
            panel(
                "timeseries",
                "Failures by component",
                "Failed steps per $window by the component they belong to: whose part of "
                "the flow broke (ProberComponentDown).",
                [
                    target(
                        f"sum by (scenario, component) "
                        f"(increase(prober_step_failures_total{{{SEL}}}[$window]))",
                        "{{scenario}} / {{component}}",
                    )
                ],
            ),
            12,
            8,
        ),
        (
            panel(
                "state-timeline",
                "Component state",
                "prober_component_last_successful, worst replica: red where a component's "
                "step failed in the last run that reached it.",
                [
                    target(
                        f"min by (scenario, component) (prober_component_last_successful{{{SEL}}})",
                        "{{scenario}} / {{component}}",
                    )
                ],
                fieldConfig={
                    "defaults": {
                        "mappings": OK_FAIL,
                        "color": {"mode": "thresholds"},
                        "thresholds": {
                            "mode": "absolute",
                            "steps": [
                                {"color": "red", "value": None},
                                {"color": "green", "value": 1},
                            ],
                        },
                    },
                    "overrides": [],
                },
                options={"showValue": "never", "mergeValues": True},
            ),
            12,
            8,
        ),
        (row("Prober"), 24, 1),
        (
            panel(
                "timeseries",
                "Failed requests per step",
                "Requests of each step that failed per $window, by kind: network (no "
                "answer: refused, DNS, TLS, reset), http_4xx, http_5xx. A failed run's "
                "result lists which ones (failed_requests).",
                [
                    target(
                        f"sum by (scenario, step, kind) "
                        f"(increase(prober_step_failed_requests_total{{{SEL}}}[$window]))",
                        "{{scenario}}/{{step}} {{kind}}",
                    )
                ],
            ),
            12,
            7,
        ),
        (
            panel(
                "timeseries",
                "Prober errors",
                "result=error runs per $window: no browser, worker crash, bad script import. "
                "The prober is broken, not the target.",
                [
                    target(
                        f"sum by (scenario, pod) (increase(prober_scenario_runs_total{{{SEL}, "
                        f'result="error"}}[$window]))',
                        "{{scenario}} @ {{pod}}",
                    )
                ],
            ),
            12,
            7,
        ),
        (
            panel(
                "timeseries",
                "Retries, artifact and history problems",
                "Retried attempts per $window (each also counted in runs), runs whose "
                "failure artifacts could not be kept, and replicas whose run history fell "
                "back to memory (1).",
                [
                    target(
                        f"sum by (scenario, pod) "
                        f"(increase(prober_scenario_retries_total{{{SEL}}}[$window]))",
                        "retries {{scenario}} @ {{pod}}",
                    ),
                    target(
                        f"sum by (pod) "
                        f"(increase(prober_artifact_failures_total{{{SEL}}}[$window]))",
                        "artifact failures @ {{pod}}",
                        "B",
                    ),
                    target(
                        'max by (pod) (prober_history_degraded{namespace=~"$namespace", '
                        'pod=~"$pod"})',
                        "history degraded @ {{pod}}",
                        "C",
                    ),
                ],
            ),
            12,
            7,
        ),
        (
            panel(
                "timeseries",
                "Slot recycles",
                "Context isolation: slots (a worker with its driver and browser) replaced per "
                "$window, by reason. max_runs, max_age and max_memory are the slot limits at "
                "work; browser_crash and worker_exit are trouble (see ProberBrowserCrashing); "
                "timeout follows every run that hit its deadline.",
                [
                    target(
                        "sum by (reason, pod) (increase(prober_slot_recycles_total{"
                        'location=~"$location", namespace=~"$namespace", pod=~"$pod"}[$window]))',
                        "{{reason}} @ {{pod}}",
                    )
                ],
            ),
            12,
            7,
        ),
        (
            panel(
                "table",
                "Replicas",
                "Scrape health and versions of each prober replica.",
                [
                    target('up{job="prober", namespace=~"$namespace", pod=~"$pod"}', instant=True),
                    target(
                        'prober_build_info{namespace=~"$namespace", pod=~"$pod"}',
                        ref="B",
                        instant=True,
                    ),
                ],
            ),
            12,
            7,
        ),
    ]


def layout(items: list[tuple[Panel, int, int]]) -> list[Panel]:
    out: list[Panel] = []
    x = y = row_height = 0
    for pid, (p, w, h) in enumerate(items, start=1):
        if x + w > 24:
            x, y, row_height = 0, y + row_height, 0
        p = {"id": pid, "gridPos": {"x": x, "y": y, "w": w, "h": h}, **p}
        out.append(p)
        x += w
        row_height = max(row_height, h)
    return out


def query_var(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def dashboard() -> dict[str, Any]:
    return {
        "uid": "prober-overview",
        "title": "prober: browser SLA checks",
        "description": "Browser-driven SLA probes: results, durations and prober health.",
        "tags": ["prober", "sla", "synthetic"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "links": [],
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                # PROBER_LOCATION: "All" also matches probers that set no location.
                query_var("location", "Location", "label_values(prober_build_info, location)"),
                query_var("namespace", "Namespace", "label_values(prober_build_info, namespace)"),
                query_var(
                    "pod", "Pod", 'label_values(prober_build_info{namespace=~"$namespace"}, pod)'
                ),
                query_var(
                    "scenario",
                    "Scenario",
                    'label_values(prober_scenario_runs_total{namespace=~"$namespace"}, scenario)',
                ),
                # One component, for "total vs total without $component".
                {
                    **query_var(
                        "component",
                        "Without component",
                        'label_values(prober_component_duration_seconds_count{namespace=~"$namespace"}'
                        ", component)",
                    ),
                    "multi": False,
                    "includeAll": False,
                    "current": {"selected": True, "text": "idp", "value": "idp"},
                },
                {
                    "name": "window",
                    "label": "Window",
                    "type": "interval",
                    "query": "5m,15m,30m,1h,6h",
                    "current": {"selected": True, "text": "15m", "value": "15m"},
                    "options": [
                        {"selected": v == "15m", "text": v, "value": v}
                        for v in ("5m", "15m", "30m", "1h", "6h")
                    ],
                    "auto": False,
                    "refresh": 2,
                },
            ]
        },
        "panels": layout(panels() + slo_panels()),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
