"""Request accounting with a real Chromium: counts per step, failed requests listed safely."""

import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from prober.contracts.config import load_config
from prober.contracts.result import Outcome
from prober.contracts.secrets import MASK
from prober.demo.site import serve_on_loopback
from prober.record.metrics import ProberMetrics
from prober.settings import (
    DEFAULT_PAGE_TIMING_BUCKETS,
    DEFAULT_SCENARIO_BUCKETS,
    DEFAULT_STEP_BUCKETS,
)
from prober.supervise.runner import WorkerRunner
from prober.worker.network import safe_url

MakeRunner = Callable[..., WorkerRunner]
TOKEN = "tok-3n7x9q"

# The report's data comes from an API that answers 500; an image is missing (404); a
# tracking pixel points at a port nothing listens on (a network error).
REPORT_PAGE = """<!doctype html><html><body><h1>Report</h1><p id="data">loading</p>
<img src="/missing.png"><img src="http://127.0.0.1:CLOSED/pixel.gif">
<script>
fetch("/api/TOKEN/data?token=TOKEN&page=2")
  .then((r) => r.ok ? r.text() : "failed")
  .then((text) => { const p = document.getElementById("data");
                    p.textContent = text; p.dataset.done = "yes"; });
</script></body></html>"""


def closed_port() -> int:
    """A port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
async def report_site() -> AsyncIterator[str]:
    closed = str(closed_port())

    async def report(request: web.Request) -> web.Response:
        token = request.query["token"]
        page = REPORT_PAGE.replace("TOKEN", token).replace("CLOSED", closed)
        return web.Response(text=page, content_type="text/html")

    async def data(request: web.Request) -> web.Response:
        return web.Response(status=500, text="database unavailable")

    async def favicon(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/report", report)
    app.router.add_get("/api/{token}/data", data)
    app.router.add_get("/favicon.ico", favicon)
    async with serve_on_loopback(app) as port:
        yield f"http://127.0.0.1:{port}"


async def test_failed_sub_requests_are_listed_with_their_step_and_counted(
    write_config: Callable[[str], Path],
    make_runner: MakeRunner,
    report_site: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REPORT_URL", report_site)
    monkeypatch.setenv("REPORT_TOKEN", TOKEN)
    config = load_config(
        write_config("""
        scenarios:
          - name: report
            interval: 60s
            timeout: 20s
            steps:
              - name: report_loaded
                actions:
                  - goto: "${public:REPORT_URL}/report?token=${REPORT_TOKEN}"
                  - wait_for: {selector: "#data[data-done]", state: attached}
              - name: data_shown
                actions:
                  - expect_text: {selector: "#data", text: "42"}
        """)
    )
    result = await make_runner(config).run(config.scenario("report"))

    assert result.result is Outcome.FAILURE, result.error
    assert result.failed_step == "data_shown"
    by_url = {request.url: request for request in result.failed_requests}
    api = by_url[f"{report_site}/api/********/data?token=********&page=********"]
    assert (api.step, api.method, api.status, api.error) == ("report_loaded", "GET", 500, None)
    image = by_url[f"{report_site}/missing.png"]
    assert (image.step, image.status) == ("report_loaded", 404)
    (pixel,) = [request for request in result.failed_requests if request.status is None]
    assert pixel.url.endswith("/pixel.gif") and pixel.error is not None
    assert "ERR_CONNECTION_REFUSED" in pixel.error
    assert len(result.failed_requests) == 3
    # Neither the declared secret nor the query values appear anywhere in the result.
    assert TOKEN not in json.dumps(result.to_json())

    (counts,) = result.request_counts
    assert counts.step == "report_loaded"
    # The document, the API call, two images and (maybe) the favicon.
    assert 4 <= counts.requests <= 5
    assert (counts.network, counts.http_4xx, counts.http_5xx) == (1, 1, 1)

    registry = CollectorRegistry()
    metrics = ProberMetrics(
        registry, DEFAULT_SCENARIO_BUCKETS, DEFAULT_STEP_BUCKETS, DEFAULT_PAGE_TIMING_BUCKETS
    )
    metrics.record(result, ended_at=0.0)
    metrics.record(result, ended_at=1.0)
    step = {"scenario": "report", "step": "report_loaded"}
    assert registry.get_sample_value("prober_step_requests_total", step) == 2 * counts.requests
    for kind in ("network", "http_4xx", "http_5xx"):
        labels = {**step, "kind": kind}
        assert registry.get_sample_value("prober_step_failed_requests_total", labels) == 2
    metrics.forget("report")
    assert registry.get_sample_value("prober_step_requests_total", step) is None


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        (
            "https://idp.example/cb?code=abc&state=xyz#frag",
            "https://idp.example/cb?code=********&state=********",
        ),
        ("https://user:pw@Host.example:8443/p", "https://host.example:8443/p"),
        ("http://[::1]:8080/x?flag", "http://[::1]:8080/x?flag=********"),
        ("http://127.0.0.1/a%20b?q=1", "http://127.0.0.1/a%20b?q=********"),
        ("http://host:99999/", MASK),
    ],
)
def test_safe_url_drops_what_may_carry_credentials(url: str, safe: str) -> None:
    assert safe_url(url) == safe
