"""Page timings: Navigation Timing, paints, LCP and CLS of every document a run loads.

The step duration says *that* a step got slow; these say *where*: the server (TTFB),
the HTML and scripts (DOMContentLoaded, load) or rendering (first/largest contentful
paint), plus how much the layout jumped (CLS).

How a document's numbers reach us: an init script in every document observes LCP and
layout shifts and, when the document is left (`beforeunload`, which fires before the
next navigation starts; `pagehide` is not delivered once the document is going away),
sends its figures through a CDP binding. The last document of a run is read by the
worker at the end of the run, outside every step's timing.

A document belongs to the step in which the navigation to it started: the step whose
`goto` or submit click left the previous document (its `beforeunload` report arrives
while that action runs), else, for a first navigation, the step running when the
document was created. Blaming the step running at creation would depend on whether
the new document commits before or after the submit click returns: a race.

Only the page the scenario is handed is measured, not popups it opens.

The binding is a function on `window`: the page can call it at will, with anything.
So a document is registered once, by the first call from its execution context (the
init script runs before the page's own scripts; CDP names the context, the page cannot
forge it), reports once, and a run measures at most MAX_PAGE_TIMINGS_PER_RUN documents.
A report for an id never registered is ignored, and every figure must be finite and
plausible: a phase within the run's remaining time at the start, a layout shift within
MAX_PLAUSIBLE_LAYOUT_SHIFT. A flood of calls costs a dictionary look-up each.
"""

import json
import math
from collections.abc import Callable
from typing import Any

from playwright.async_api import BrowserContext, Page

from prober.contracts.protocol import (
    MAX_PAGE_TIMINGS_PER_RUN,
    MAX_PLAUSIBLE_LAYOUT_SHIFT,
    MAX_PLAUSIBLE_SECONDS,
    Event,
    PageTimingReported,
)
from prober.contracts.result import PHASES, Phase

BINDING = "__proberPageTiming"
# How long the end-of-run read waits for a first paint that has not happened yet.
FINAL_PAINT_WAIT_MS = 1000
# Our reports are ~300 bytes; a longer payload is not ours and is not even parsed.
MAX_PAYLOAD_CHARS = 2048

# Times are milliseconds since the navigation started (Navigation Timing's origin), so
# TTFB includes redirects and connection set-up, as a user waits through them. CLS is
# the largest session window (gaps < 1 s, windows < 5 s), as Core Web Vitals define it.
INIT_SCRIPT = """
(() => {
  const send = window.BINDING;
  // Out of the page's reach from its first script on; this closure keeps it.
  delete window.BINDING;
  if (window !== window.top || !send || window.__proberCollect) return;
  if (!/^https?:$/.test(location.protocol)) return;
  const id = Math.random().toString(36).slice(2) + performance.timeOrigin;
  const state = { lcp: null, cls: 0, session: 0, first: 0, last: 0, reported: false };
  const observe = (type, onEntry) => {
    try {
      new PerformanceObserver((list) => list.getEntries().forEach(onEntry))
        .observe({ type, buffered: true });
    } catch (e) { /* not supported by this browser */ }
  };
  observe("largest-contentful-paint", (e) => { state.lcp = e.startTime; });
  observe("layout-shift", (e) => {
    if (e.hadRecentInput) return;
    if (state.session && (e.startTime - state.last > 1000 || e.startTime - state.first > 5000)) {
      state.session = 0;
    }
    if (!state.session) state.first = e.startTime;
    state.session += e.value;
    state.last = e.startTime;
    state.cls = Math.max(state.cls, state.session);
  });
  const collect = () => {
    if (state.reported) return null;
    state.reported = true;
    const nav = performance.getEntriesByType("navigation")[0];
    const fcp = performance.getEntriesByName("first-contentful-paint")[0];
    return JSON.stringify({
      id,
      ttfb: nav ? nav.responseStart : null,
      dom_content_loaded: nav ? nav.domContentLoadedEventEnd : null,
      load: nav ? nav.loadEventEnd : null,
      first_contentful_paint: fcp ? fcp.startTime : null,
      largest_contentful_paint: state.lcp,
      cumulative_layout_shift: state.cls,
    });
  };
  window.__proberCollect = async (waitMs) => {
    if (!performance.getEntriesByName("first-contentful-paint").length) {
      await new Promise((resolve) => {
        setTimeout(resolve, waitMs);
        observe("paint", (e) => { if (e.name === "first-contentful-paint") resolve(); });
      });
    }
    return collect();
  };
  send(JSON.stringify({ id }));
  for (const event of ["beforeunload", "pagehide"]) {
    window.addEventListener(event, () => { const data = collect(); if (data) send(data); });
  }
})();
""".replace("BINDING", BINDING)

_FINAL_READ = "(ms) => window.__proberCollect ? window.__proberCollect(ms) : null"


class PageTimingProbe:
    """Worker side: installs the init script and binding, turns reports into events."""

    def __init__(
        self,
        current_step: Callable[[], str | None],
        emit: Callable[[Event], None],
        max_seconds: float = MAX_PLAUSIBLE_SECONDS,
    ) -> None:
        """`max_seconds`: no phase can be longer than what is left of the run now."""
        self._current_step = current_step
        self._emit = emit
        self._max_seconds = min(max_seconds, MAX_PLAUSIBLE_SECONDS)
        self._document_steps: dict[str, str | None] = {}
        # Execution contexts that have registered their document, and documents reported.
        self._contexts: set[int] = set()
        self._reported: set[str] = set()
        # Set when a document is left: the step that started the next navigation.
        self._navigating_step: str | None = None

    async def install(self, context: BrowserContext, page: Page) -> None:
        """Before the first navigation: documents created earlier are not measured."""
        await context.add_init_script(script=INIT_SCRIPT)
        cdp = await context.new_cdp_session(page)
        cdp.on("Runtime.bindingCalled", self._called)
        # bindingCalled is only delivered to a session with the Runtime domain enabled.
        await cdp.send("Runtime.enable")
        await cdp.send("Runtime.addBinding", {"name": BINDING})

    async def read_last(self, page: Page) -> None:
        """Report the document still open at the end of the run (its unload never comes)."""
        self._report(await page.evaluate(_FINAL_READ, FINAL_PAINT_WAIT_MS))

    def _called(self, event: dict[str, Any]) -> None:
        if event.get("name") == BINDING:
            self._report(event.get("payload"), context=event.get("executionContextId"))

    def _report(self, payload: Any, context: Any = None) -> None:
        """`context`: the calling execution context, for binding calls (None: the final read)."""
        if not isinstance(payload, str) or len(payload) > MAX_PAYLOAD_CHARS:
            return
        try:
            data = json.loads(payload)
        except ValueError:
            return
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            return
        document = data["id"]
        if set(data) == {"id"}:  # the document has just been created
            if context is None or context in self._contexts or document in self._document_steps:
                return
            if len(self._document_steps) >= MAX_PAGE_TIMINGS_PER_RUN:
                return
            self._contexts.add(context)
            self._document_steps[document] = self._navigating_step or self._current_step()
            self._navigating_step = None
            return
        if document not in self._document_steps or document in self._reported:
            return
        self._reported.add(document)
        if context is not None:  # a document being left: the next navigation starts now
            self._navigating_step = self._current_step()
        step = self._document_steps[document]
        if step is None:
            return
        event = from_page(data, step, self._max_seconds)
        if event is not None:
            self._emit(event)


def from_page(
    data: dict[str, Any], step: str, max_seconds: float = MAX_PLAUSIBLE_SECONDS
) -> PageTimingReported | None:
    """A document's figures (milliseconds, from the page) as an event; None if unusable.

    Phases not reached (0 or missing) are left out, and so is anything implausible:
    longer than `max_seconds`, or a layout shift above MAX_PLAUSIBLE_LAYOUT_SHIFT.
    """
    phases: dict[Phase, float] = {
        phase: seconds
        for phase in PHASES
        if (seconds := _seconds(data.get(phase), max_seconds)) is not None
    }
    cls = _number(data.get("cumulative_layout_shift"))
    if cls is not None and cls > MAX_PLAUSIBLE_LAYOUT_SHIFT:
        cls = None
    if not phases and cls is None:
        return None
    return PageTimingReported(step=step, phases=phases, cumulative_layout_shift=cls)


def _seconds(milliseconds: Any, max_seconds: float) -> float | None:
    number = _number(milliseconds)
    if not number:
        return None
    seconds = number / 1000.0
    return seconds if seconds <= min(max_seconds, MAX_PLAUSIBLE_SECONDS) else None


def _number(value: Any) -> float | None:
    """A finite, non-negative number (JSON from a page may hold anything)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None
