"""A run's own page at `/runs/{run_id}`: everything about one run, for the incident channel.

Its steps with durations and components (as a waterfall and a table), the error, the
requests that failed (when the run result carries them), the screenshot inline, links
to the Playwright trace, the HAR and the run's JSON, and its W3C trace id, to paste into
Tempo or Jaeger. The link is stable for as long as history keeps the run.
"""

import html
import time

from aiohttp import web

from prober.contracts.result import RunResult
from prober.contracts.secrets import Redactor
from prober.http import pages
from prober.http.api import artifact_url
from prober.record.history import RunRecord

TITLES = {"trace": "Playwright trace", "har": "HAR", "screenshot": "screenshot"}


async def handle(request: web.Request) -> web.Response:
    source = request.app[pages.SOURCE_KEY]
    run_id = request.match_info["run_id"]
    record = await source.history.get(run_id)
    if record is None:
        return pages.respond(
            "run not found",
            f"<h1>Run not found</h1><p>No run <code>{html.escape(run_id)}</code> in history: "
            'it may have aged out (PROBER_HISTORY_RETENTION). <a href="/">Status page</a>.</p>',
            status=404,
        )
    on_disk = frozenset(
        name
        for name in record.result.artifacts
        if source.artifacts_dir is not None and (source.artifacts_dir / name).is_file()
    )
    body = render(record, source.redact, on_disk, now=time.time())
    return pages.respond(f"{record.scenario} run {run_id}", body)


def render(record: RunRecord, redact: Redactor, on_disk: frozenset[str], now: float) -> str:
    e = html.escape
    r = record.result
    out = [
        f'<p class=meta><a href="/">status</a> &rsaquo; <a href="/#scenario-{e(r.scenario)}">'
        f"{e(r.scenario)}</a></p>",
        f'<h1>{e(r.scenario)} <span class="state {e(r.result.value)}">{e(r.result.value)}'
        "</span></h1>",
        "<div class=scroll><table class=facts>",
        _fact("run id", f"<code>{e(r.run_id)}</code>"),
        _fact("trace id", _trace_id(r)),
        _fact("started", e(pages.when(r.started_at))),
        _fact("ended", f"{e(pages.when(record.ended_at))} ({e(pages.ago(record.ended_at, now))})"),
        _fact("duration", f"{r.duration_seconds:.3f}s"),
    ]
    if r.browser_launch_seconds is not None:
        out.append(_fact("browser launch", f"{r.browser_launch_seconds:.3f}s"))
    if r.attempt > 1:
        out.append(_fact("attempt", f"{r.attempt} (a retry)"))
    if r.failed_step:
        out.append(_fact("failed step", f"{e(r.failed_step)} ({e(_reason(r))})"))
    out.append(_fact("JSON", f'<a href="/api{e(pages.run_url(r.run_id))}">/api/runs/…</a>'))
    out.append("</table></div>")
    if r.error:
        out.append(f"<h2>Error</h2><pre class=errortext>{e(redact(r.error))}</pre>")
    if r.steps:
        out.append(f"<h2>Steps</h2>{pages.waterfall(r)}{pages.step_table(r)}")
    out.append(_failed_requests(r, redact))
    out.append(_artifacts(r, redact, on_disk))
    return "".join(out)


def _fact(name: str, value_html: str) -> str:
    return f"<tr><th>{html.escape(name)}</th><td>{value_html}</td></tr>"


def _trace_id(result: RunResult) -> str:
    if not result.trace_id:
        return "<span class=meta>none (recorded before prober kept trace ids)</span>"
    return f"<code class=trace-id>{html.escape(result.trace_id)}</code>"


def _reason(result: RunResult) -> str:
    return result.reason.value if result.reason else "unknown"


def _failed_requests(result: RunResult, redact: Redactor) -> str:
    """The run's failed requests (the first few; the worker bounds the list), masked again."""
    if not result.failed_requests:
        return ""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(f.step)}</td><td>{e(f.method)}</td><td><code>{e(redact(f.url))}</code></td>"
        f"<td>{e(str(f.status) if f.status is not None else redact(f.error or ''))}</td></tr>"
        for f in result.failed_requests
    )
    return (
        "<h2>Failed requests</h2><table class=failed-requests><tr><th>step</th><th>method</th>"
        f"<th>URL</th><th>status or error</th></tr>{rows}</table>"
    )


def _artifacts(result: RunResult, redact: Redactor, on_disk: frozenset[str]) -> str:
    e = html.escape
    if not result.artifacts:
        why = f" ({e(redact(result.artifact_error))})" if result.artifact_error else ""
        return f"<h2>Artifacts</h2><p class=meta>None kept for this run{why}.</p>"
    links, shots = [], []
    for name in result.artifacts:
        url = e(artifact_url(result.run_id, name))
        kind = pages.artifact_label(result.run_id, name)
        if name not in on_disk:
            links.append(f"<li>{e(TITLES.get(kind, kind))}: removed by retention</li>")
            continue
        links.append(f'<li><a href="{url}">{e(TITLES.get(kind, kind))}</a></li>')
        if name.lower().endswith(".png"):
            shots.append(f'<a href="{url}"><img class=full src="{url}" alt="screenshot"></a>')
    return f"<h2>Artifacts</h2><ul class=artifacts>{''.join(links)}</ul>{''.join(shots)}"
