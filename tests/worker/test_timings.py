"""Page timings with a real Chromium: each document's phases, owned by the right step."""

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from prober.contracts.config import Config, load_config
from prober.contracts.protocol import MAX_PAGE_TIMINGS_PER_RUN, PageTimingReported
from prober.contracts.result import PHASES, Outcome, PageTiming, RunResult
from prober.demo.site import serve_on_loopback
from prober.record.metrics import ProberMetrics
from prober.settings import (
    DEFAULT_PAGE_TIMING_BUCKETS,
    DEFAULT_SCENARIO_BUCKETS,
    DEFAULT_STEP_BUCKETS,
)
from prober.supervise.runner import WorkerRunner
from prober.worker.timings import BINDING, PageTimingProbe, from_page
from tests.conftest import SIGN_IN_STEPS, Target

Load = Callable[[Path], Config]
MakeRunner = Callable[..., WorkerRunner]

# Text that a late banner pushes down: a layout shift no user input caused.
SHIFTING_PAGE = """<!doctype html><html><body style="margin:0">
<div id="top"></div><p style="font-size:40px">Content that moves</p>
<p style="font-size:40px">More content that moves</p>
<script>setTimeout(() => {
  document.getElementById("top").style.height = "300px";
  // Marked settled two frames (and a task) later, once the shift has been reported.
  requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => {
    document.body.dataset.settled = "yes";
  }, 50)));
}, 300)</script></body></html>"""


def sign_in() -> str:
    return (
        """
    scenarios:
      - name: sso-login
        interval: 60s
        timeout: 20s
    """
        + SIGN_IN_STEPS
    )


async def test_every_navigation_is_timed_and_owned_by_the_step_that_started_it(
    write_config: Callable[[str], Path], load: Load, make_runner: MakeRunner, target_env: Target
) -> None:
    # A slow redirect: the projects page commits well after the submit click returned.
    target_env.delays["/callback"] = 0.5
    config = load(write_config(sign_in()))
    result = await make_runner(config).run(config.scenario("sso-login"))

    assert result.result is Outcome.SUCCESS, result.error
    # The submit click in credentials_accepted starts the navigation to the projects
    # page, however early or late the new page commits.
    assert [t.step for t in result.page_timings] == [
        "app_page_loaded",
        "idp_page_loaded",
        "credentials_accepted",
    ]
    # TTFB counts from the start of the navigation, through the redirects.
    assert result.page_timings[-1].phases["ttfb"] >= 0.5
    for timing in result.page_timings:
        phases = timing.phases
        assert set(phases) == set(PHASES), timing
        assert 0 < phases["ttfb"] <= phases["dom_content_loaded"] <= phases["load"] < 20
        assert phases["first_contentful_paint"] <= phases["largest_contentful_paint"] < 20
        assert timing.cumulative_layout_shift == 0.0

    registry = CollectorRegistry()
    metrics = ProberMetrics(
        registry, DEFAULT_SCENARIO_BUCKETS, DEFAULT_STEP_BUCKETS, DEFAULT_PAGE_TIMING_BUCKETS
    )
    metrics.record(result, ended_at=0.0)
    for step in ("app_page_loaded", "idp_page_loaded", "credentials_accepted"):
        for phase in PHASES:
            labels = {"scenario": "sso-login", "step": step, "phase": phase}
            assert registry.get_sample_value("prober_page_timing_seconds_count", labels) == 1
        shift = registry.get_sample_value(
            "prober_page_cumulative_layout_shift", {"scenario": "sso-login", "step": step}
        )
        assert shift == 0.0
    # Step durations are unchanged by the measurement: still the steps alone.
    assert sum(s.duration_seconds for s in result.steps) <= result.duration_seconds


@pytest.fixture
async def shifting_site() -> AsyncIterator[str]:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=SHIFTING_PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    async with serve_on_loopback(app) as port:
        yield f"http://127.0.0.1:{port}"


async def test_layout_shift_is_measured(
    write_config: Callable[[str], Path],
    make_runner: MakeRunner,
    shifting_site: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHIFTING_URL", shifting_site)
    config = load_config(
        write_config("""
        scenarios:
          - name: shifty
            interval: 60s
            timeout: 20s
            steps:
              - name: page_settled
                actions:
                  - goto: "${SHIFTING_URL}/"
                  - wait_for: {selector: "body[data-settled]", state: attached}
        """)
    )
    result = await make_runner(config).run(config.scenario("shifty"))

    assert result.result is Outcome.SUCCESS, result.error
    (timing,) = result.page_timings
    assert timing.step == "page_settled"
    assert timing.cumulative_layout_shift is not None and timing.cumulative_layout_shift > 0.05


def test_worst_layout_shift_of_a_step_and_location_label() -> None:
    registry = CollectorRegistry()
    metrics = ProberMetrics(
        registry,
        DEFAULT_SCENARIO_BUCKETS,
        DEFAULT_STEP_BUCKETS,
        DEFAULT_PAGE_TIMING_BUCKETS,
        location="eu-west",
    )
    result = RunResult(
        scenario="shop",
        run_id="r1",
        result=Outcome.FAILURE,
        duration_seconds=1.0,
        started_at=0.0,
        page_timings=(
            PageTiming("cart", {"ttfb": 0.05}, cumulative_layout_shift=0.02),
            PageTiming("cart", {"ttfb": 0.07, "load": 0.4}, cumulative_layout_shift=0.3),
        ),
    )
    metrics.record(result, ended_at=0.0)

    labels = {"scenario": "shop", "step": "cart", "location": "eu-west"}
    assert registry.get_sample_value("prober_page_cumulative_layout_shift", labels) == 0.3
    ttfb = {**labels, "phase": "ttfb"}
    assert registry.get_sample_value("prober_page_timing_seconds_count", ttfb) == 2
    assert registry.get_sample_value("prober_page_timing_seconds_sum", ttfb) == pytest.approx(0.12)
    load = {**labels, "phase": "load"}
    assert registry.get_sample_value("prober_page_timing_seconds_count", load) == 1


# The binding is deleted before the page's first script runs; if it were not, this page
# would call it 100,000 times: documents that do not exist, figures no page can have,
# payloads too big to be ours. Then the real navigation to a second page.
FLOOD_PAGE = """<!doctype html><html><body><h1>Flood</h1><a href="/second">next</a>
<script>
const send = window.__proberPageTiming;
document.body.dataset.reachable = send ? "yes" : "no";
if (send) {
  for (let i = 0; i < 25000; i++) {
    send(JSON.stringify({ id: "fake" + i }));
    send(JSON.stringify({ id: "fake" + i, ttfb: 1e308, load: 5, cumulative_layout_shift: 1e308 }));
    send(JSON.stringify({ id: "fake" + i, ttfb: 10, dom_content_loaded: 3.6e9 }));
    send("x".repeat(3000));
  }
}
document.body.dataset.flooded = "yes";
</script></body></html>"""


@pytest.fixture
async def flooding_site() -> AsyncIterator[str]:
    async def flood(request: web.Request) -> web.Response:
        return web.Response(text=FLOOD_PAGE, content_type="text/html")

    async def second(request: web.Request) -> web.Response:
        return web.Response(text="<h1>Second</h1>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", flood)
    app.router.add_get("/second", second)
    async with serve_on_loopback(app) as port:
        yield f"http://127.0.0.1:{port}"


async def test_a_page_cannot_reach_the_binding_nor_inflate_the_timings(
    write_config: Callable[[str], Path],
    make_runner: MakeRunner,
    flooding_site: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOOD_URL", flooding_site)
    config = load_config(
        write_config("""
        scenarios:
          - name: flood
            interval: 60s
            timeout: 60s
            steps:
              - name: flooded
                actions:
                  - goto: "${FLOOD_URL}/"
                  - wait_for: {selector: "body[data-flooded]", state: attached}
                  - expect_text: {selector: "h1", text: "Flood"}
                  - wait_for: {selector: "body[data-reachable=no]", state: attached}
              - name: second_page
                actions:
                  - click: "text=next"
                  - wait_for: "text=Second"
        """)
    )
    result = await make_runner(config).run(config.scenario("flood"))

    assert result.result is Outcome.SUCCESS, result.error
    # The two real documents, once each, with real figures.
    assert [t.step for t in result.page_timings] == ["flooded", "second_page"]
    for timing in result.page_timings:
        assert set(timing.phases) == set(PHASES), timing
        assert all(0 < seconds < 60 for seconds in timing.phases.values()), timing
        assert timing.cumulative_layout_shift is not None
        assert timing.cumulative_layout_shift < 1
    assert len(json.dumps(result.to_json())) < 5000


class FakeCalls:
    """The probe's binding side fed directly: what a page could send if it held the binding."""

    def __init__(self, max_seconds: float = 60.0) -> None:
        self.events: list[PageTimingReported] = []
        self.probe = PageTimingProbe(lambda: "step", self.emit, max_seconds)  # type: ignore[arg-type]

    def emit(self, event: PageTimingReported) -> None:
        self.events.append(event)

    def call(self, context: int, payload: object) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        self.probe._called({"name": BINDING, "payload": text, "executionContextId": context})


def test_each_document_registers_once_reports_once_and_a_run_has_a_bound() -> None:
    fake = FakeCalls()
    report = {"ttfb": 100.0, "load": 400.0, "cumulative_layout_shift": 0.1}
    fake.call(1, {"id": "real"})
    for i in range(10_000):
        fake.call(1, {"id": f"fake{i}"})  # the same document registering again
        fake.call(1, {"id": f"fake{i}", **report})  # ids never registered
        fake.call(1, {"id": "real", **report})  # reported once only
    assert [e.phases for e in fake.events] == [{"ttfb": 0.1, "load": 0.4}]

    many = FakeCalls()
    for context in range(10_000):  # one per document, as if it navigated that often
        many.call(context, {"id": f"doc{context}"})
        many.call(context, {"id": f"doc{context}", **report})
    assert len(many.events) == MAX_PAGE_TIMINGS_PER_RUN


@pytest.mark.parametrize(
    ("figures", "max_seconds", "phases", "shift"),
    [
        ({"ttfb": 120.0, "load": 900.0}, 60.0, {"ttfb": 0.12, "load": 0.9}, None),
        ({"ttfb": 120.0, "load": 61_000.0}, 60.0, {"ttfb": 0.12}, None),
        ({"load": 1e308, "cumulative_layout_shift": 1e308}, 60.0, {}, None),
        ({"load": 5.0, "cumulative_layout_shift": 0.3}, 60.0, {"load": 0.005}, 0.3),
        ({"load": -5.0, "cumulative_layout_shift": 101.0}, 60.0, {}, None),
        ({"load": "5", "ttfb": True, "cumulative_layout_shift": float("nan")}, 60.0, {}, None),
    ],
)
def test_figures_from_the_page_must_be_finite_and_plausible(
    figures: dict[str, object],
    max_seconds: float,
    phases: dict[str, float],
    shift: float | None,
) -> None:
    event = from_page({"id": "doc", **figures}, "step", max_seconds)
    if not phases and shift is None:
        assert event is None
    else:
        assert event is not None
        assert event.phases == phases and event.cumulative_layout_shift == shift
