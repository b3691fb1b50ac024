"""Run ids as OpenMetrics exemplars, from a real scrape of the /metrics endpoint."""

import asyncio
import re
import shutil
from asyncio.subprocess import PIPE, STDOUT
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from prober.contracts.result import Outcome, PageTiming, RunResult, StepResult
from prober.http.server import Health, make_app
from prober.record.metrics import ProberMetrics
from prober.settings import (
    DEFAULT_PAGE_TIMING_BUCKETS,
    DEFAULT_SCENARIO_BUCKETS,
    DEFAULT_STEP_BUCKETS,
)

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
RUN_ID = "20261124T070512Z-3f9a1c2b"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
async def metrics_url() -> AsyncIterator[str]:
    registry = CollectorRegistry()
    metrics = ProberMetrics(
        registry,
        DEFAULT_SCENARIO_BUCKETS,
        DEFAULT_STEP_BUCKETS,
        DEFAULT_PAGE_TIMING_BUCKETS,
        location="eu-west",
    )
    metrics.record(
        RunResult(
            scenario="sso-login",
            run_id=RUN_ID,
            result=Outcome.SUCCESS,
            duration_seconds=1.7,
            started_at=0.0,
            steps=(StepResult("app_page_loaded", 0.4, True), StepResult("back_in_app", 1.3, True)),
            page_timings=(PageTiming("app_page_loaded", {"ttfb": 0.03, "load": 0.2}, 0.0),),
            trace_id=TRACE_ID,
        ),
        ended_at=1795500000.0,
    )
    # As `prober serve` serves it: the sectioned cache.
    app = make_app(registry, Health(alive=lambda: True, browser_problem=lambda: None), metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/metrics"
    await runner.cleanup()


async def scrape(url: str, accept: str | None) -> tuple[str, str]:
    headers = {"Accept": accept} if accept else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        assert response.status == 200
        return response.headers["Content-Type"], await response.text()


async def test_openmetrics_scrape_links_buckets_to_the_run_and_its_trace(
    metrics_url: str,
) -> None:
    content_type, text = await scrape(metrics_url, OPENMETRICS)

    assert content_type.startswith("application/openmetrics-text")
    exemplar = re.escape(f'# {{run_id="{RUN_ID}",trace_id="{TRACE_ID}"}}')
    for series, value in (
        (r'prober_scenario_duration_seconds_bucket\{le="2\.0",location="eu-west",', "1.7"),
        (r'prober_step_duration_seconds_bucket\{le="0\.5",location="eu-west",', "0.4"),
        (r'prober_step_duration_seconds_bucket\{le="2\.0",location="eu-west",', "1.3"),
        (r'prober_page_timing_seconds_bucket\{le="0\.05",location="eu-west",', "0.03"),
    ):
        pattern = rf"^{series}[^}}]*\}} 1\.0 {exemplar} {re.escape(value)}"
        assert re.search(pattern, text, re.MULTILINE), f"no exemplar: {series}"
    assert text.rstrip().endswith("# EOF")


async def test_plain_text_scrape_has_no_exemplars_and_passes_promtool(metrics_url: str) -> None:
    content_type, text = await scrape(metrics_url, None)

    assert content_type.startswith("text/plain")
    assert RUN_ID not in text and TRACE_ID not in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    check = await asyncio.create_subprocess_exec(
        promtool, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
    )
    output, _ = await check.communicate(text.encode())
    assert check.returncode == 0, output.decode()
