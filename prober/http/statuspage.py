"""The status page at `/`: server-rendered HTML for the person asking "is it us?".

Per scenario: its state; availability over 24 h, 7 d and 30 d from history against the
scenario's objective, and the error budget left in its SLO window, with the SLI of the
SLO rules (prober/slo/rules.py): the share of valid runs that succeeded, where `error`
runs (prober's own fault) are not valid. Then the last run as a step waterfall with its
time split by component, recent durations as an inline SVG chart (each bar links to its
run's page), and the latest failures. Everything shown is escaped, and error texts are
masked again even though the runner already masked them: this is the most read output.
"""

import html
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from aiohttp import web

from prober.contracts.result import Outcome
from prober.contracts.secrets import Redactor
from prober.http import pages, runpage
from prober.http.api import artifact_url
from prober.http.pages import SOURCE_KEY, StatusSource
from prober.record.history import History, RunRecord

CHART_RUNS = 40
FAILURES_SHOWN = 5
ERROR_CHARS = 600
# A failure's first failed requests (the API has up to 20): what broke, at a glance.
FAILED_REQUESTS_SHOWN = 3
FAILED = (Outcome.FAILURE, Outcome.TIMEOUT, Outcome.ERROR)
# The windows a person asks about; the SLO's own window is added when it has one.
WINDOWS = (("24h", 86400.0), ("7d", 7 * 86400.0), ("30d", 30 * 86400.0))


@dataclass(frozen=True)
class Availability:
    """The SLI over one window, or why it cannot be given."""

    window: str
    seconds: float
    good: int  # successful runs
    valid: int  # runs that reached the target: all but `error`
    errors: int  # prober's own faults, shown apart
    # History keeps successes for less than the window: the share would be biased.
    beyond_retention: bool

    @property
    def ratio(self) -> float | None:
        if self.beyond_retention or self.valid == 0:
            return None
        return self.good / self.valid


@dataclass(frozen=True)
class ScenarioView:
    name: str
    interval: float
    timeout: float
    running: bool
    recent: list[RunRecord]  # newest first
    failures: list[RunRecord]  # newest first
    present: frozenset[str] = frozenset()  # artifact files of `failures` still on disk
    availability: tuple[Availability, ...] = ()
    objective: Decimal | None = None
    # Over the SLO window; None without an objective.
    budget: Availability | None = None


def install(app: web.Application, source: StatusSource) -> None:
    """Serve the page at `/` and each run's page at `/runs/{run_id}`."""
    app[SOURCE_KEY] = source
    app.router.add_get("/", handle)
    app.router.add_get("/runs/{run_id}", runpage.handle)


async def handle(request: web.Request) -> web.Response:
    source = request.app[SOURCE_KEY]
    now = time.time()
    views = []
    for name, scenario in sorted(source.scheduler.scenarios.items()):
        failures = await source.history.runs(scenario=name, results=FAILED, limit=FAILURES_SHOWN)
        objective = scenario.slo.objective if scenario.slo else None
        budget = None
        if scenario.slo is not None and objective is not None:
            budget = await availability(source.history, name, "slo", scenario.slo.window, now)
        views.append(
            ScenarioView(
                name=name,
                interval=scenario.interval,
                timeout=scenario.timeout,
                running=source.scheduler.is_running(name),
                recent=await source.history.runs(scenario=name, limit=CHART_RUNS),
                failures=failures,
                present=present(source.artifacts_dir, failures),
                availability=tuple(
                    [await availability(source.history, name, w, s, now) for w, s in WINDOWS]
                ),
                objective=objective,
                budget=budget,
            )
        )
    body = render(views, source.redact, degraded=source.history.degraded, now=now)
    return pages.respond("prober status", body)


async def availability(
    history: History, scenario: str, window: str, seconds: float, now: float
) -> Availability:
    counts = await history.tally(scenario, since=now - seconds)
    errors = counts.get(Outcome.ERROR, 0)
    kept = min(history.retention.success_seconds, history.retention.failure_seconds)
    return Availability(
        window=window,
        seconds=seconds,
        good=counts.get(Outcome.SUCCESS, 0),
        valid=sum(counts.values()) - errors,
        errors=errors,
        beyond_retention=seconds > kept,
    )


def budget_remaining(objective: Decimal, window: Availability) -> float | None:
    """1 = untouched, 0 = spent, below 0 = overspent: as `prober rules` records it."""
    if window.ratio is None:
        return None
    allowed = 1 - float(objective)
    return 1 - (1 - window.ratio) / allowed


def present(directory: Path | None, records: list[RunRecord]) -> frozenset[str]:
    """Artifacts still on disk: a thumbnail of a file removed by retention is a broken image."""
    if directory is None:
        return frozenset()
    names = {name for record in records for name in record.result.artifacts}
    return frozenset(name for name in names if (directory / name).is_file())


def render(views: Iterable[ScenarioView], redact: Redactor, degraded: bool, now: float) -> str:
    e = html.escape
    parts = [
        # The page refreshes itself: no script needed for a wall screen.
        '<meta http-equiv="refresh" content="30">',
        "<h1>prober status</h1>",
        f'<p class=meta>Updated {e(pages.when(now))}. JSON: <a href="/api/scenarios">'
        '/api/scenarios</a>, <a href="/api/runs">/api/runs</a>, '
        '<a href="/api/openapi.yaml">OpenAPI</a>.</p>',
    ]
    if degraded:
        parts.append(
            "<p class=warn>Run history database failed: history is kept in memory only "
            "and will be lost on restart (see the log).</p>"
        )
    parts.extend(_scenario(view, redact, now) for view in views)
    return "".join(parts)


def _scenario(view: ScenarioView, redact: Redactor, now: float) -> str:
    e = html.escape
    last = view.recent[0] if view.recent else None
    if view.running:
        state, label = "running", "running"
    elif last is None:
        state, label = "none", "no runs yet"
    else:
        state = label = last.result.result.value
    out = [
        f'<section id="scenario-{e(view.name)}"><h2>{e(view.name)} ',
        f'<span class="state {state}">{e(label)}</span></h2>',
        f"<div class=meta>every {pages.span(view.interval)}, timeout {pages.span(view.timeout)}",
    ]
    if last is not None:
        out.append(
            f'; <a href="{e(pages.run_url(last.run_id))}">last run</a> '
            f"{e(pages.ago(last.ended_at, now))}: {e(last.result.result.value)}"
            f" in {last.result.duration_seconds:.2f}s"
        )
    out.append("</div>")
    out.append(_availability(view))
    if last is not None and last.result.steps:
        out.append(_last_run(last))
    if view.recent:
        longest = max(r.result.duration_seconds for r in view.recent)
        out.append(
            f"<div class=meta>Last {len(view.recent)} runs, oldest left; the tallest bar is "
            f"{longest:.2f}s; each bar opens its run.</div>{_chart(list(reversed(view.recent)))}"
        )
    if view.failures:
        out.append(
            "<div class=scroll><table class=failures><tr><th>when</th><th>result</th>"
            "<th>step</th><th>error</th><th>artifacts</th></tr>"
        )
        out.extend(_failure(record, view.present, redact, now) for record in view.failures)
        out.append("</table></div>")
    out.append("</section>")
    return "".join(out)


def _availability(view: ScenarioView) -> str:
    """A row per window: the SLI, runs counted, and met/missed against the objective."""
    e = html.escape
    target = f" (objective {pages.percent(float(view.objective))})" if view.objective else ""
    rows = [
        f"<div class=scroll><table class=availability><tr><th>availability{e(target)}</th>"
        "<th>runs</th><th>prober errors</th></tr>"
    ]
    for window in view.availability:
        rows.append(
            f'<tr data-window="{e(window.window)}"><th>{e(window.window)}</th>'
            f"<td class=num>{_ratio(window, view.objective)}</td>"
            f"<td class=num>{window.good}/{window.valid}</td>"
            f"<td class=num>{window.errors}</td></tr>"
        )
    rows.append("</table></div>")
    if view.objective is not None and view.budget is not None:
        remaining = budget_remaining(view.objective, view.budget)
        span = pages.span(view.budget.seconds)
        if remaining is None:
            why = _missing(view.budget)
            rows.append(f"<div class=budget>Error budget over {span}: {e(why)}</div>")
        else:
            verdict = "good" if remaining > 0 else "bad"
            rows.append(
                f"<div class=budget>Error budget left over {span}: "
                f'<span class="{verdict}">{remaining * 100:.1f}%</span> '
                f"({view.budget.valid - view.budget.good} bad of {view.budget.valid} runs; "
                f"{_allowed(view.objective, view.budget.valid)})</div>"
            )
    return "".join(rows)


def _ratio(window: Availability, objective: Decimal | None) -> str:
    ratio = window.ratio
    if ratio is None:
        return f'<span class=meta title="{html.escape(_missing(window))}">—</span>'
    if objective is None:
        return pages.percent(ratio)
    verdict = "good" if ratio >= objective else "bad"
    return f'<span class="{verdict}">{pages.percent(ratio)}</span>'


def _missing(window: Availability) -> str:
    if window.beyond_retention:
        return (
            f"history keeps successes for less than {pages.span(window.seconds)} "
            "(PROBER_HISTORY_RETENTION); see the SLO recording rules in Prometheus"
        )
    return "no valid runs in this window"


def _allowed(objective: Decimal, valid: int) -> str:
    return f"the objective allows {float(1 - objective) * valid:.1f}"


def _last_run(record: RunRecord) -> str:
    r = record.result
    split = pages.component_split(r)
    colours = pages.component_colours(r)
    components = ""
    if len(split) > 1:
        total = sum(split.values()) or 1.0
        components = (
            "<div class=components>By component: "
            + ", ".join(
                f'<span class=swatch style="background:{colours[name]}"></span>'
                f"{html.escape(name)} {seconds:.2f}s ({seconds / total * 100:.0f}%)"
                for name, seconds in split.items()
            )
            + "</div>"
        )
    return (
        f"<div class=last-run><div class=meta>Last run, step by step "
        f"({r.duration_seconds:.2f}s):</div>{pages.waterfall(r)}{components}"
        f"{pages.step_table(r)}</div>"
    )


def _chart(runs: list[RunRecord], width: int = 400, height: int = 60) -> str:
    """One bar per run, oldest left; height is the duration, colour the result."""
    longest = max((r.result.duration_seconds for r in runs), default=0.0) or 1.0
    slot = width / max(len(runs), CHART_RUNS // 2)
    bars = []
    for index, record in enumerate(runs):
        r = record.result
        bar = max(2.0, r.duration_seconds / longest * (height - 2))
        tip = f"{pages.when(record.ended_at)} {r.result.value} {r.duration_seconds:.2f}s"
        bars.append(
            f'<a href="{html.escape(pages.run_url(r.run_id))}"><rect x="{index * slot:.1f}" '
            f'y="{height - bar:.1f}" width="{slot * 0.8:.1f}" height="{bar:.1f}" '
            f'fill="{pages.COLOURS[r.result]}"><title>{html.escape(tip)}</title></rect></a>'
        )
    return (
        f'<svg class=chart role=img width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="durations of the last {len(runs)} runs, '
        f'longest {longest:.2f}s">{"".join(bars)}</svg>'
    )


def _failure(record: RunRecord, present: frozenset[str], redact: Redactor, now: float) -> str:
    e = html.escape
    r = record.result
    error = redact(r.error or "")
    if len(error) > ERROR_CHARS:
        error = error[:ERROR_CHARS] + "…"
    links, shots = [], []
    for name in r.artifacts:
        url = e(artifact_url(r.run_id, name))
        links.append(f'<a href="{url}">{e(pages.artifact_label(r.run_id, name))}</a>')
        if name.lower().endswith(".png") and name in present:
            shots.append(f'<a href="{url}"><img class=shot src="{url}" alt="screenshot"></a>')
    requests = "".join(
        f"<li>{e(f.step)}: {e(f.method)} {e(redact(f.url))} → "
        f"{e(str(f.status) if f.status is not None else redact(f.error or ''))}</li>"
        for f in r.failed_requests[:FAILED_REQUESTS_SHOWN]
    )
    listed = f"<ul class=requests>{requests}</ul>" if requests else ""
    return (
        f'<tr class=failure-row><td><a href="{e(pages.run_url(r.run_id))}">'
        f"{e(pages.ago(record.ended_at, now))}</a></td>"
        f"<td>{e(r.result.value)}</td><td>{e(r.failed_step or '')}</td>"
        f"<td><pre>{e(error)}</pre>{listed}</td><td>{' '.join(links)}{''.join(shots)}</td></tr>"
    )
