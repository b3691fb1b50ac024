"""Prometheus rules for every objective in a scenario file (`prober rules`).

Pure functions of the loaded scenarios, so the output is the same on every machine and
can be committed (deploy/ holds the rules for the example scenarios; a test regenerates
them). The shape follows the Google SRE Workbook, chapter 5 ("Alerting on SLOs"):

- `prober:slo_errors:ratio_rate<W>`: the share of valid runs that were bad over each
  window W an alert needs, plus the SLO window itself;
- four multiwindow, multi-burn-rate alerts `ProberErrorBudgetBurn`: 14.4x over 1h and 5m
  and 6x over 6h and 30m page (severity critical), 3x over 1d and 2h and 1x over 3d and
  6h open a ticket (severity warning); the short window makes an alert stop soon after
  the burn stops;
- `prober:slo_error_budget_remaining:ratio` (1 = untouched, 0 = spent, below 0 = over)
  and `prober:slo_objective:ratio` for dashboards.

What counts (the SLI):
- a *valid* run reached the target: every result except `error`, which is prober's own
  fault (no browser, worker crash) and stays visible in
  prober_scenario_runs_total{result="error"} and the ProberRunErrors alert;
- availability: a valid run is good when it succeeded;
- latency: a valid run is good when it succeeded within `duration_under`. Failed and
  timed-out runs stay in the denominator as bad: were they left out, a target whose slow
  runs turn into timeouts would look faster the worse it got;
- a step's SLO counts the runs that reached the step (it finished, or failed there).
Counters are summed by location, namespace, job and scenario (and step), never by pod,
so two replicas' runs each count once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import yaml

from prober.contracts.config import Scenario, load_config

Format = Literal["rules", "prometheusrule"]
FORMATS: tuple[Format, ...] = ("rules", "prometheusrule")

ALERT = "ProberErrorBudgetBurn"
RUNBOOK = f"README.md#{ALERT.lower()}"
ERRORS = "prober:slo_errors:ratio_rate"
BUDGET_REMAINING = "prober:slo_error_budget_remaining:ratio"
OBJECTIVE = "prober:slo_objective:ratio"
# The labels a ratio keeps: the same grouping as deploy/prometheus/rules.yaml, minus pod.
GROUPING = ("location", "namespace", "job", "scenario")


@dataclass(frozen=True)
class BurnRateAlert:
    """Fire when the error ratio is above `factor` x budget over both windows."""

    factor: Decimal
    long_window: str
    short_window: str
    severity: str


# SRE Workbook, table 5-8 (page) and the ticket rows: the budget spent in the long window
# is 2% (1h), 5% (6h), 10% (1d) and 10% (3d) of a 30-day budget.
BURN_RATE_ALERTS = (
    BurnRateAlert(Decimal("14.4"), "1h", "5m", "critical"),
    BurnRateAlert(Decimal("6"), "6h", "30m", "critical"),
    BurnRateAlert(Decimal("3"), "1d", "2h", "warning"),
    BurnRateAlert(Decimal("1"), "3d", "6h", "warning"),
)
ALERT_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


@dataclass(frozen=True)
class Objective:
    """One SLO: a kind of good run, a target ratio and a budget window."""

    scenario: str
    step: str | None
    slo: Literal["availability", "latency"]
    target: Decimal
    window_days: int
    duration_under: float | None = None

    @property
    def budget(self) -> Decimal:
        return 1 - self.target

    @property
    def window(self) -> str:
        return f"{self.window_days}d"

    @property
    def windows(self) -> tuple[str, ...]:
        """Alert windows and the SLO window, shortest first, each once."""
        return (*ALERT_WINDOWS, *([self.window] if self.window not in ALERT_WINDOWS else []))

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.scenario, self.step or "", self.slo)

    @property
    def selector(self) -> str:
        """Matches this objective's recorded series (`step=""` matches no step label)."""
        return f'{{scenario="{self.scenario}", step="{self.step or ""}", slo="{self.slo}"}}'

    @property
    def labels(self) -> dict[str, str]:
        return {"slo": self.slo, **({"step": self.step} if self.step else {})}

    @property
    def subject(self) -> str:
        return f"scenario {self.scenario}" + (f", step {self.step}" if self.step else "")

    def describe(self) -> str:
        """`99.5% of valid runs succeed, over 28d` (for annotations and comments)."""
        what = "succeed"
        if self.duration_under is not None:
            what = f"succeed within {_go_float(self.duration_under)}s"
        return f"{_percent(self.target)} of valid runs {what}, over {self.window}"


def objectives(scenarios: Iterable[Scenario]) -> list[Objective]:
    """Every objective declared on a scenario or on one of its steps, sorted."""
    found: list[Objective] = []
    for scenario in scenarios:
        blocks = [(None, scenario.slo)] + [(s.name, s.slo) for s in scenario.steps or ()]
        for step, slo in blocks:
            if slo is None:
                continue
            if slo.objective is not None:
                found.append(
                    Objective(scenario.name, step, "availability", slo.objective, slo.window_days)
                )
            if slo.latency is not None:
                found.append(
                    Objective(
                        scenario.name,
                        step,
                        "latency",
                        slo.latency.objective,
                        slo.window_days,
                        slo.latency.duration_under,
                    )
                )
    return sorted(found, key=lambda o: o.key)


def error_ratio(objective: Objective, window: str) -> str:
    """PromQL: the share of valid runs that were bad over `window`."""
    by = ", ".join((*GROUPING, *(["step"] if objective.step else [])))
    scenario = f'scenario="{objective.scenario}"'
    if objective.step is None:
        valid = f'prober_scenario_runs_total{{{scenario}, result!="error"}}'
        valid_rate = f"sum by ({by}) (rate({valid}[{window}]))"
        if objective.duration_under is None:
            bad = f'prober_scenario_runs_total{{{scenario}, result=~"failure|timeout"}}'
            return f"sum by ({by}) (rate({bad}[{window}]))\n/\n{valid_rate}"
        good = f"prober_scenario_duration_seconds_bucket{{{scenario}, {_le(objective)}}}"
        return f"1 - (\n  sum by ({by}) (rate({good}[{window}]))\n  /\n  {valid_rate}\n)"
    # A step's series appear with its first finish or failure: `or` joins what exists.
    step = f'{scenario}, step="{objective.step}"'
    failed = f'prober_step_failures_total{{{step}, reason!="crash"}}'
    finished = f"prober_step_duration_seconds_count{{{step}}}"
    valid_rate = (
        f"sum by ({by}) (\n  rate({finished}[{window}])\n  or\n  rate({failed}[{window}])\n)"
    )
    if objective.duration_under is None:
        return (
            f"(\n  sum by ({by}) (rate({failed}[{window}]))\n  or\n"
            f"  0 * sum by ({by}) (rate({finished}[{window}]))\n)\n/\n{valid_rate}"
        )
    good = f"prober_step_duration_seconds_bucket{{{step}, {_le(objective)}}}"
    return (
        f"1 - (\n  sum by ({by}) (rate({good}[{window}]))\n  /\n"
        + _indent(valid_rate, "  ")
        + "\n)"
    )


def rule_groups(scenarios: Iterable[Scenario]) -> list[dict[str, Any]]:
    """One rule group per objective: its ratios first, then the alerts that read them."""
    groups = []
    for objective in objectives(scenarios):
        name = "-".join(
            ["prober-slo", objective.scenario, *([objective.step] if objective.step else [])]
        )
        labels = objective.labels
        rules: list[dict[str, Any]] = [
            {"record": f"{ERRORS}{w}", "expr": error_ratio(objective, w), "labels": labels}
            for w in objective.windows
        ]
        rules.append(
            {
                "record": OBJECTIVE,
                "expr": f"vector({_number(objective.target)})",
                "labels": {"scenario": objective.scenario, **objective.labels},
            }
        )
        rules.append(
            {
                "record": BUDGET_REMAINING,
                "expr": f"1 - {ERRORS}{objective.window}{objective.selector}"
                f" / {_number(objective.budget)}",
                "labels": objective.labels,
            }
        )
        rules.extend(_alert(objective, burn) for burn in BURN_RATE_ALERTS)
        groups.append({"name": f"{name}-{objective.slo}", "rules": rules})
    return groups


def _alert(objective: Objective, burn: BurnRateAlert) -> dict[str, Any]:
    threshold = f"({_number(burn.factor)} * {_number(objective.budget)})"
    lasts = Decimal(objective.window_days) / burn.factor
    action = "pages" if burn.severity == "critical" else "opens a ticket"
    return {
        "alert": ALERT,
        "expr": (
            f"{ERRORS}{burn.long_window}{objective.selector} > {threshold}\n"
            "and\n"
            f"{ERRORS}{burn.short_window}{objective.selector} > {threshold}\n"
        ),
        "labels": {
            "severity": burn.severity,
            **objective.labels,
            "burn_rate": _number(burn.factor),
            "long_window": burn.long_window,
            "short_window": burn.short_window,
        },
        "annotations": {
            "summary": (
                f"{objective.subject.capitalize()} burns its {objective.slo} error budget "
                f"{_number(burn.factor)}x too fast"
            ),
            "description": (
                f"SLO: {objective.describe()}. Over the last {burn.long_window} and "
                f"{burn.short_window} more than {_number(burn.factor)} x "
                f"{_percent(objective.budget)} of valid runs were bad "
                f"({burn.long_window}: {{{{ $value | humanizePercentage }}}}); at this rate "
                f"the {objective.window} budget is spent in {_days(lasts)}. This alert "
                f"{action}; result=error runs are not counted (see ProberRunErrors)."
            ),
            "runbook_url": RUNBOOK,
        },
    }


def render(scenarios: Iterable[Scenario], fmt: Format = "rules", source: str = "") -> str:
    """The rule file (or PrometheusRule manifest) text, byte-identical for equal input."""
    groups = rule_groups(scenarios)
    origin = f" from {source}" if source else ""
    header = (
        f"# GENERATED by `prober rules`{origin}; do not edit.\n"
        "# Change the scenarios' `slo:` blocks and regenerate. Runbook: README.md, SLOs.\n"
    )
    if fmt == "rules":
        return header + _dump({"groups": groups})
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "prober-slo", "labels": {"app.kubernetes.io/name": "prober"}},
        "spec": {"groups": groups},
    }
    return header + _dump(manifest)


def generate(path: str | os.PathLike[str], fmt: Format = "rules") -> str:
    """`render` for a scenario file, as `prober rules` prints it; ConfigError if invalid.

    Rules depend on names and `slo:` blocks only, so CI can generate them without the
    probes' URLs and credentials: an unset `${VAR}` is not an error here.
    """
    config = load_config(path, _Unexpanded(os.environ), read_files=False)
    return render(config.scenarios, fmt, source=str(config.path))


class _Unexpanded(Mapping[str, str]):
    """The environment, where an unset variable stands for a placeholder.

    The placeholder is a URL that never resolves (RFC 6761 `.invalid`) because the usual
    unset variable is a base URL (`${public:APP_URL}/login`), which must still pass the
    schema's URL check; rules never look at it.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def __getitem__(self, name: str) -> str:
        return self._environ.get(name, f"http://{name.lower().replace('_', '-')}.invalid")

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as `|` blocks, so the committed file reads like rules.yaml."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=False)


def _le(objective: Objective) -> str:
    # prometheus-client writes the boundary with floatToGoString: 5 -> "5.0", 0.25 -> "0.25".
    assert objective.duration_under is not None
    return f'le="{_go_float(objective.duration_under)}"'


def _go_float(value: float) -> str:
    """A bucket boundary as prometheus-client writes it in `le`.

    Imported here: prometheus_client's package import pulls in its whole exposition side
    (~0.1 CPU-s), which `prober run` and `prober check` (they import this module for the
    CLI's --format choices) never use.
    """
    from prometheus_client.utils import floatToGoString

    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def _number(value: Decimal) -> str:
    """Shortest exact decimal: 0.0050 -> 0.005, 6 -> 6, 14.4 -> 14.4."""
    return format(value.normalize(), "f")


def _percent(ratio: Decimal) -> str:
    return f"{_number(ratio * 100)}%"


def _days(days: Decimal) -> str:
    hours = days * 24
    if hours < 48:
        return f"{_number(round(hours, 1))} hours"
    return f"{_number(round(days, 1))} days"


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())
