"""The status page at `/`: server-rendered HTML for the person asking "why is it red?".

No JavaScript and no build step: every scenario with its state, its recent durations as
an inline SVG bar chart, and its latest failures with the step, the error and links to
the screenshot and trace. Everything shown is escaped, and error texts are masked again
even though the runner already masked them: this page is the most widely read output.
"""

import html
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from prober.contracts.result import Outcome
from prober.contracts.secrets import Redactor
from prober.http.api import artifact_url
from prober.record.history import History, RunRecord
from prober.schedule.scheduler import Scheduler

CHART_RUNS = 40
FAILURES_SHOWN = 5
ERROR_CHARS = 600
# A failure's first failed requests (the API has up to 20): what broke, at a glance.
FAILED_REQUESTS_SHOWN = 3
FAILED = (Outcome.FAILURE, Outcome.TIMEOUT, Outcome.ERROR)
COLOURS = {
    Outcome.SUCCESS: "#2e7d32",
    Outcome.FAILURE: "#c62828",
    Outcome.TIMEOUT: "#ef6c00",
    Outcome.ERROR: "#757575",
}
# No scripts at all; inline styles and same-origin screenshots only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin: 0 0 .3rem; }
section { border: 1px solid #ddd; border-radius: 6px; padding: .8rem 1rem; margin: 1rem 0; }
.state { font-weight: 600; padding: 1px 8px; border-radius: 10px; color: #fff; }
.success { background: #2e7d32; } .failure { background: #c62828; }
.timeout { background: #ef6c00; } .error, .none { background: #757575; }
.running { background: #1565c0; }
.meta { color: #555; } .warn { background: #fff3e0; padding: .5rem; border-radius: 4px; }
table { border-collapse: collapse; margin-top: .5rem; } td, th { padding: 2px 10px 2px 0; }
th { text-align: left; } pre { white-space: pre-wrap; margin: 0; max-width: 60rem; }
img.shot { max-width: 240px; border: 1px solid #ccc; display: block; margin-top: 4px; }
"""


@dataclass(frozen=True)
class ScenarioView:
    name: str
    interval: float
    timeout: float
    running: bool
    recent: list[RunRecord]  # newest first
    failures: list[RunRecord]  # newest first
    present: frozenset[str] = frozenset()  # artifact files of `failures` still on disk


@dataclass(frozen=True)
class StatusSource:
    """What the page reads: the same scheduler, history and redactor the API uses."""

    scheduler: Scheduler
    history: History
    redact: Redactor
    artifacts_dir: Path | None


SOURCE_KEY = web.AppKey("status_source", StatusSource)


def install(app: web.Application, source: StatusSource) -> None:
    """Serve the page at `/`."""
    app[SOURCE_KEY] = source
    app.router.add_get("/", handle)


async def handle(request: web.Request) -> web.Response:
    source = request.app[SOURCE_KEY]
    views = []
    for name, scenario in sorted(source.scheduler.scenarios.items()):
        failures = await source.history.runs(scenario=name, results=FAILED, limit=FAILURES_SHOWN)
        views.append(
            ScenarioView(
                name=name,
                interval=scenario.interval,
                timeout=scenario.timeout,
                running=source.scheduler.is_running(name),
                recent=await source.history.runs(scenario=name, limit=CHART_RUNS),
                failures=failures,
                present=_present(source.artifacts_dir, failures),
            )
        )
    page = render(views, source.redact, degraded=source.history.degraded, now=time.time())
    return web.Response(
        text=page, content_type="text/html", headers={"Content-Security-Policy": CSP}
    )


def _present(directory: Path | None, records: list[RunRecord]) -> frozenset[str]:
    """Artifacts still on disk: a thumbnail of a file removed by retention is a broken image."""
    if directory is None:
        return frozenset()
    names = {name for record in records for name in record.result.artifacts}
    return frozenset(name for name in names if (directory / name).is_file())


def render(views: Iterable[ScenarioView], redact: Redactor, degraded: bool, now: float) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta http-equiv="refresh" content="30">',
        f"<title>prober status</title><style>{STYLE}</style></head><body>",
        "<h1>prober status</h1>",
        f'<p class=meta>Updated {e(_when(now))}. JSON: <a href="/api/scenarios">/api/scenarios</a>,'
        ' <a href="/api/runs">/api/runs</a>, <a href="/api/openapi.yaml">OpenAPI</a>.</p>',
    ]
    if degraded:
        parts.append(
            "<p class=warn>Run history database failed: history is kept in memory only "
            "and will be lost on restart (see the log).</p>"
        )
    for view in views:
        parts.append(_scenario(view, redact, now))
    parts.append("</body></html>")
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
        f"<div class=meta>every {_span(view.interval)}, timeout {_span(view.timeout)}",
    ]
    if last is not None:
        out.append(
            f"; last run {e(_ago(last.ended_at, now))}: {e(last.result.result.value)}"
            f" in {last.result.duration_seconds:.2f}s"
        )
    out.append("</div>")
    if view.recent:
        longest = max(r.result.duration_seconds for r in view.recent)
        out.append(
            f"<div class=meta>Last {len(view.recent)} runs, oldest left; the tallest bar is "
            f"{longest:.2f}s.</div>{_chart(list(reversed(view.recent)))}"
        )
    if view.failures:
        out.append(
            "<table><tr><th>when</th><th>result</th><th>step</th><th>error</th>"
            "<th>artifacts</th></tr>"
        )
        out.extend(_failure(record, view.present, redact, now) for record in view.failures)
        out.append("</table>")
    out.append("</section>")
    return "".join(out)


def _chart(runs: list[RunRecord], width: int = 400, height: int = 60) -> str:
    """One bar per run, oldest left; height is the duration, colour the result."""
    longest = max((r.result.duration_seconds for r in runs), default=0.0) or 1.0
    slot = width / max(len(runs), CHART_RUNS // 2)
    bars = []
    for index, record in enumerate(runs):
        r = record.result
        bar = max(2.0, r.duration_seconds / longest * (height - 2))
        tip = f"{_when(record.ended_at)} {r.result.value} {r.duration_seconds:.2f}s"
        bars.append(
            f'<rect x="{index * slot:.1f}" y="{height - bar:.1f}" width="{slot * 0.8:.1f}"'
            f' height="{bar:.1f}" fill="{COLOURS[r.result]}"><title>{html.escape(tip)}'
            "</title></rect>"
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
        links.append(f'<a href="{url}">{e(_artifact_label(r.run_id, name))}</a>')
        if name.lower().endswith(".png") and name in present:
            shots.append(f'<a href="{url}"><img class=shot src="{url}" alt="screenshot"></a>')
    run_url = e(f"/api/runs/{quote(r.run_id, safe='')}")
    requests = "".join(
        f"<li>{e(f.step)}: {e(f.method)} {e(redact(f.url))} → "
        f"{e(str(f.status) if f.status is not None else redact(f.error or ''))}</li>"
        for f in r.failed_requests[:FAILED_REQUESTS_SHOWN]
    )
    listed = f"<ul class=requests>{requests}</ul>" if requests else ""
    return (
        f'<tr class=failure-row><td><a href="{run_url}">{e(_ago(record.ended_at, now))}</a></td>'
        f"<td>{e(r.result.value)}</td><td>{e(r.failed_step or '')}</td>"
        f"<td><pre>{e(error)}</pre>{listed}</td><td>{' '.join(links)}{''.join(shots)}</td></tr>"
    )


def _artifact_label(run_id: str, name: str) -> str:
    """`{run_id}-screenshot.png` -> `screenshot`; anything else keeps its name."""
    kind = name.removeprefix(f"{run_id}-")
    return kind.rsplit(".", 1)[0] if kind != name else name


def _span(seconds: float) -> str:
    """3600 -> `1h`, 90 -> `1m30s`, 0.5 -> `0.5s`: how durations are written in config."""
    whole = int(seconds)
    if whole != seconds or whole < 60:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def _ago(timestamp: float, now: float) -> str:
    seconds = max(0, int(now - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
