"""Page timings with a real Chromium: each document's phases, owned by the right step."""

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from prober.contracts.config import Config, load_config
from prober.contracts.result import PHASES, Outcome, PageTiming, RunResult
from prober.record.metrics import ProberMetrics
from prober.settings import (
    DEFAULT_PAGE_TIMING_BUCKETS,
    DEFAULT_SCENARIO_BUCKETS,
    DEFAULT_STEP_BUCKETS,
)
from prober.supervise.runner import WorkerRunner
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
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


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
