"""The cached /metrics: never stale, both formats, gzip, spliced exactly, over real HTTP."""

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import NamedTuple

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from prober.contracts.result import (
    Certificate,
    Outcome,
    PageTiming,
    Reason,
    RunResult,
    StepRequests,
    StepResult,
)
from prober.http.exposition import MAX_STALENESS_SECONDS, Splicer
from prober.http.server import Health, make_app
from prober.record.metrics import ProberMetrics
from prober.settings import (
    DEFAULT_PAGE_TIMING_BUCKETS,
    DEFAULT_SCENARIO_BUCKETS,
    DEFAULT_STEP_BUCKETS,
)

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


class Served(NamedTuple):
    url: str
    metrics: ProberMetrics
    registry: CollectorRegistry


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    registry = CollectorRegistry()
    metrics = ProberMetrics(
        registry, DEFAULT_SCENARIO_BUCKETS, DEFAULT_STEP_BUCKETS, DEFAULT_PAGE_TIMING_BUCKETS
    )
    runner = web.AppRunner(make_app(registry, Health(lambda: True, lambda: None), metrics))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield Served(f"http://127.0.0.1:{port}/metrics", metrics, registry)
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


async def test_scrapes_are_at_most_a_second_behind(served: Served) -> None:
    url, metrics, _ = served
    assert count((await scrape(url))[0]) is None
    for expected in (1.0, 2.0, 3.0):
        metrics.record(success(f"run-{expected}"), ended_at=time.time())
        text, response = await scrape(url)  # the cached body, or a fresh one
        assert count(text) in (expected - 1 or None, expected)
        assert response.headers["Content-Type"].startswith("text/plain")
        await asyncio.sleep(MAX_STALENESS_SECONDS)
        assert count((await scrape(url))[0]) == expected


async def test_openmetrics_gzip_scrape_carries_exemplars(
    served: Served,
) -> None:
    url, metrics, _ = served
    metrics.record(success("run-a"), ended_at=time.time())
    text, response = await scrape(url, OPENMETRICS)
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.headers["Content-Encoding"] == "gzip"
    assert '# {run_id="run-a"}' in text
    metrics.record(success("run-b"), ended_at=time.time())
    await asyncio.sleep(MAX_STALENESS_SECONDS)
    text, _ = await scrape(url, OPENMETRICS)
    assert '# {run_id="run-b"}' in text


def busy(metrics: ProberMetrics) -> None:
    """Every kind of series: three scenarios' runs of every outcome, the replica's own."""
    metrics.set_build_info("1.0", "1.50", "140")
    metrics.config_loaded(True, 1795500000.0)
    metrics.set_history_degraded(False)
    for scenario in ("login", "checkout", "search"):
        steps = (StepResult("home", 0.2, True, "web"), StepResult("pay", 1.1, True, "psp"))
        metrics.run_started(scenario, "r1")
        metrics.run_ended(
            scenario,
            "r1",
            RunResult(
                scenario,
                "r1",
                Outcome.SUCCESS,
                1.3,
                0.0,
                steps,
                page_timings=(PageTiming("home", {"ttfb": 0.03, "load": 0.2}, 0.01),),
                trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
                request_counts=(StepRequests("home", 12, 1, 0, 2),),
                certificates=(Certificate("shop.example", 2e9),),
            ),
            ended_at=1795500001.0,
        )
        failed = (StepResult("home", 0.2, True, "web"), StepResult("pay", 4.0, False, "psp"))
        metrics.record(
            RunResult(scenario, "r2", Outcome.FAILURE, 4.2, 0.0, failed, "pay", Reason.SELECTOR),
            ended_at=1795500002.0,
        )
        metrics.record(RunResult(scenario, "r3", Outcome.ERROR, 0.1, 0.0), ended_at=1.0)
    metrics.forget("search")


@pytest.mark.parametrize("gzipped", [False, True])
async def test_a_scrape_is_byte_for_byte_prometheus_clients_own_render(
    served: Served, gzipped: bool
) -> None:
    url, metrics, registry = served
    busy(metrics)
    await asyncio.sleep(MAX_STALENESS_SECONDS)  # rendered anew since the last change
    encoding = {"Accept-Encoding": "gzip" if gzipped else "identity"}
    async with aiohttp.ClientSession() as session:
        for accept, render in (("text/plain", generate_latest), (OPENMETRICS, openmetrics_latest)):
            headers = {"Accept": accept, **encoding}
            async with session.get(url, headers=headers) as response:
                body = await response.read()
                assert (response.headers.get("Content-Encoding") == "gzip") is gzipped
            # The registry's whole render, from prometheus_client's encoder: the same
            # families in the same order, each once, every series and exemplar in it.
            assert body == render(registry)
    text = body.decode()
    assert text.endswith("# EOF\n")
    families = {family.name: family for family in parse_openmetrics(text)}
    assert 'scenario="search"' not in text
    runs = families["prober_scenario_runs"].samples
    assert {
        (s.labels["scenario"], s.labels["result"]) for s in runs if s.name.endswith("total")
    } == {
        (scenario, result)
        for scenario in ("login", "checkout")
        for result in ("success", "failure", "error")
    }
    buckets = [
        s for s in families["prober_step_duration_seconds"].samples if s.exemplar is not None
    ]
    # r2 failed at "pay": its "home" step still counts, linked to that run.
    assert {s.exemplar.labels["run_id"] for s in buckets} == {"r1", "r2"}


def test_only_the_sections_that_changed_are_rendered_again() -> None:
    registry = CollectorRegistry()
    metrics = ProberMetrics(
        registry, DEFAULT_SCENARIO_BUCKETS, DEFAULT_STEP_BUCKETS, DEFAULT_PAGE_TIMING_BUCKETS
    )
    busy(metrics)
    rendered: list[CollectorRegistry] = []

    def encoder(section: CollectorRegistry) -> bytes:
        rendered.append(section)
        return generate_latest(section)

    splicer = Splicer(encoder, openmetrics=False)
    registries = {key: section for key, _, section in metrics.sections()}
    assert splicer.render(metrics.sections()) == generate_latest(registry)
    assert rendered == list(registries.values())  # the first render: every section
    rendered.clear()
    metrics.record(success("run-b"), ended_at=time.time())  # scenario "login"
    assert splicer.render(metrics.sections()) == generate_latest(registry)
    assert rendered == [registries[("scenario", "login")]]
    rendered.clear()
    metrics.forget("checkout")
    body = splicer.render(metrics.sections())
    assert rendered == []
    assert body == generate_latest(registry)
    assert b'scenario="checkout"' not in body


def test_renders_while_another_thread_updates_end_equal_to_the_registry() -> None:
    registry = CollectorRegistry()
    metrics = ProberMetrics(
        registry, DEFAULT_SCENARIO_BUCKETS, DEFAULT_STEP_BUCKETS, DEFAULT_PAGE_TIMING_BUCKETS
    )
    splicer = Splicer(openmetrics_latest, openmetrics=True)

    def update() -> None:  # as the history thread does, next to the event loop's runs
        for n in range(300):
            metrics.record(success(f"run-{n}"), ended_at=time.time())
            metrics.run_started(f"s{n % 7}", "r")
            if n % 50 == 49:
                metrics.forget("s3")

    writer = threading.Thread(target=update)
    writer.start()
    while writer.is_alive():
        list(parse_openmetrics(splicer.render(metrics.sections()).decode()))  # well-formed
    writer.join()
    assert splicer.render(metrics.sections()) == openmetrics_latest(registry)
