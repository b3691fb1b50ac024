"""What the status page and the run pages share: the frame, the style and the waterfall.

Server-rendered, no JavaScript and no external assets (the CSP forbids both), so the
pages work from a kubectl port-forward on a phone. Every value shown goes through
`html.escape`; free text (errors) is masked by the caller before it gets here.
"""

import html
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from prober.contracts.result import Outcome, RunResult
from prober.contracts.secrets import Redactor
from prober.record.history import History
from prober.schedule.scheduler import Scheduler

# No scripts at all; inline styles and same-origin screenshots only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"
COLOURS = {
    Outcome.SUCCESS: "#2e7d32",
    Outcome.FAILURE: "#c62828",
    Outcome.TIMEOUT: "#ef6c00",
    Outcome.ERROR: "#757575",
}
# Components of a waterfall, in the order they first appear; none of them red (failure).
COMPONENT_COLOURS = ("#1565c0", "#6a1b9a", "#00838f", "#5d4037", "#558b2f", "#ad1457")
FAILED_COLOUR = "#c62828"
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1rem; color: #222; max-width: 70rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin: 1rem 0 .3rem; }
section h2 { margin: 0 0 .3rem; }
pre.errortext { background: #fdecea; padding: .4rem; border-radius: 4px; }
section { border: 1px solid #ddd; border-radius: 6px; padding: .8rem 1rem; margin: 1rem 0; }
.state { font-weight: 600; padding: 1px 8px; border-radius: 10px; color: #fff; }
.success { background: #2e7d32; } .failure { background: #c62828; }
.timeout { background: #ef6c00; } .error, .none { background: #757575; }
.running { background: #1565c0; }
.meta { color: #555; } .warn { background: #fff3e0; padding: .5rem; border-radius: 4px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin-top: .5rem; } td, th { padding: 2px 10px 2px 0; }
th { text-align: left; vertical-align: top; } td { vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; max-width: 60rem; }
code { overflow-wrap: anywhere; }
img.shot { max-width: 240px; border: 1px solid #ccc; display: block; margin-top: 4px; }
img.full { max-width: 100%; border: 1px solid #ccc; }
svg.chart { width: 100%; max-width: 400px; height: auto; }
.good { color: #2e7d32; font-weight: 600; } .bad { color: #c62828; font-weight: 600; }
.waterfall { display: flex; height: 18px; border-radius: 3px; overflow: hidden;
  background: #eee; margin: .4rem 0; max-width: 40rem; }
.waterfall span { display: block; height: 100%; min-width: 2px; border-right: 1px solid #fff; }
.budget, .last-run, .components { margin: .4rem 0; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 2px;
  vertical-align: middle; margin-right: 4px; }
@media (max-width: 600px) {
  body { margin: .5rem; } section { padding: .6rem; } td, th { padding: 2px 6px 2px 0; }
  table.failures tr:first-child { display: none; }
  table.failures tr { display: block; border-top: 1px solid #ddd; padding: .3rem 0; }
  table.failures td { display: inline-block; padding-right: 8px; }
  table.failures td:nth-child(4), table.failures td:nth-child(5) { display: block; }
}
"""


@dataclass(frozen=True)
class StatusSource:
    """What the pages read: the same scheduler, history and redactor the API uses."""

    scheduler: Scheduler
    history: History
    redact: Redactor
    artifacts_dir: Path | None


SOURCE_KEY = web.AppKey("status_source", StatusSource)


def respond(title: str, body: str, status: int = 200) -> web.Response:
    """A whole HTML page, with the CSP that keeps it script-free."""
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    return web.Response(
        text=page,
        status=status,
        content_type="text/html",
        headers={"Content-Security-Policy": CSP},
    )


def run_url(run_id: str) -> str:
    """The run's own page (prober.http.runpage)."""
    return f"/runs/{quote(run_id, safe='')}"


def component_colours(result: RunResult) -> dict[str, str]:
    """A colour per component of the run, stable within one run's rendering."""
    colours: dict[str, str] = {}
    for step in result.steps:
        if step.component not in colours:
            colours[step.component] = COMPONENT_COLOURS[len(colours) % len(COMPONENT_COLOURS)]
    return colours


def waterfall(result: RunResult) -> str:
    """The run's time as one bar: a segment per step, its width the step's share.

    Steps run one after another, so shares of the run's duration are a waterfall laid
    flat. The failed step is red whatever its component; time outside steps is grey.
    """
    total = max(result.duration_seconds, sum(s.duration_seconds for s in result.steps), 1e-9)
    colours = component_colours(result)
    segments = []
    for step in result.steps:
        colour = colours[step.component] if step.ok else FAILED_COLOUR
        share = step.duration_seconds / total * 100
        tip = f"{step.name} ({step.component}) {step.duration_seconds:.3f}s, {share:.0f}%"
        if not step.ok:
            tip += ", failed"
        segments.append(
            f'<span class="{"step" if step.ok else "step failed"}" '
            f'style="width:{share:.2f}%;background:{colour}" '
            f'title="{html.escape(tip)}"></span>'
        )
    return (
        f'<div class=waterfall role=img aria-label="step waterfall of run '
        f'{html.escape(result.run_id)}">{"".join(segments)}</div>'
    )


def step_table(result: RunResult) -> str:
    """The waterfall's legend: each step with its component, seconds and share."""
    e = html.escape
    total = max(result.duration_seconds, sum(s.duration_seconds for s in result.steps), 1e-9)
    colours = component_colours(result)
    rows = [
        "<div class=scroll><table class=steps><tr><th>step</th><th>component</th>"
        "<th>seconds</th><th>share</th></tr>"
    ]
    for step in result.steps:
        colour = colours[step.component] if step.ok else FAILED_COLOUR
        mark = ' <span class="bad">failed</span>' if not step.ok else ""
        rows.append(
            f'<tr class="{"step-row" if step.ok else "step-row failed"}">'
            f'<td><span class=swatch style="background:{colour}"></span>{e(step.name)}{mark}</td>'
            f"<td>{e(step.component)}</td><td class=num>{step.duration_seconds:.3f}</td>"
            f"<td class=num>{step.duration_seconds / total * 100:.0f}%</td></tr>"
        )
    rows.append("</table></div>")
    return "".join(rows)


def component_split(result: RunResult) -> dict[str, float]:
    """Seconds per component in one run (IdP vs app): where the time went."""
    split: dict[str, float] = {}
    for step in result.steps:
        split[step.component] = split.get(step.component, 0.0) + step.duration_seconds
    return split


def artifact_label(run_id: str, name: str) -> str:
    """`{run_id}-screenshot.png` -> `screenshot`; anything else keeps its name."""
    kind = name.removeprefix(f"{run_id}-")
    return kind.rsplit(".", 1)[0] if kind != name else name


def span(seconds: float) -> str:
    """3600 -> `1h`, 90 -> `1m30s`, 0.5 -> `0.5s`: how durations are written in config."""
    whole = int(seconds)
    if whole != seconds or whole < 60:
        return f"{seconds:g}s"
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s"))
    return "".join(f"{n}{u}" for n, u in units if n)


def when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def ago(timestamp: float, now: float) -> str:
    seconds = max(0, int(now - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def percent(ratio: float) -> str:
    """Availability needs its decimals: 99.95% and 99.5% are different promises."""
    return f"{ratio * 100:.2f}%"
