"""The cached /metrics: never stale, both formats, gzip, over real HTTP."""

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from prober.contracts.result import Outcome, RunResult, StepResult
from prober.http.exposition import MAX_STALENESS_SECONDS
from prober.http.server import Health, make_app
from prober.record.metrics import ProberMetrics
from prober.settings import (
    DEFAULT_PAGE_TIMING_BUCKETS,
    DEFAULT_SCENARIO_BUCKETS,
    DEFAULT_STEP_BUCKETS,
)

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, ProberMetrics]]:
    registry = CollectorRegistry()
    metrics = ProberMetrics(
        registry, DEFAULT_SCENARIO_BUCKETS, DEFAULT_STEP_BUCKETS, DEFAULT_PAGE_TIMING_BUCKETS
    )
    runner = web.AppRunner(make_app(registry, Health(lambda: True, lambda: None), metrics))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/metrics", metrics
    await runner.cleanup()


def success(run_id: str) -> RunResult:
    return RunResult(
        "login", run_id, Outcome.SUCCESS, 0.8, time.time(), (StepResult("home", 0.8, True),)
    )


async def scrape(url: str, accept: str = "") -> tuple[str, aiohttp.ClientResponse]:
    headers = {"Accept": accept, "Accept-Encoding": "gzip"} if accept else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return await response.text(), response


def count(text: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "prober_scenario_runs_total" and sample.labels == {
                "scenario": "login",
                "result": "success",
            }:
                return sample.value
    return None


async def test_scrapes_are_at_most_a_second_behind(served: tuple[str, ProberMetrics]) -> None:
    url, metrics = served
    assert count((await scrape(url))[0]) is None
    for expected in (1.0, 2.0, 3.0):
        metrics.record(success(f"run-{expected}"), ended_at=time.time())
        text, response = await scrape(url)  # the cached body, or a fresh one
        assert count(text) in (expected - 1 or None, expected)
        assert response.headers["Content-Type"].startswith("text/plain")
        await asyncio.sleep(MAX_STALENESS_SECONDS)
        assert count((await scrape(url))[0]) == expected


async def test_openmetrics_gzip_scrape_carries_exemplars(
    served: tuple[str, ProberMetrics],
) -> None:
    url, metrics = served
    metrics.record(success("run-a"), ended_at=time.time())
    text, response = await scrape(url, OPENMETRICS)
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.headers["Content-Encoding"] == "gzip"
    assert '# {run_id="run-a"}' in text
    metrics.record(success("run-b"), ended_at=time.time())
    await asyncio.sleep(MAX_STALENESS_SECONDS)
    text, _ = await scrape(url, OPENMETRICS)
    assert '# {run_id="run-b"}' in text
