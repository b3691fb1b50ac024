"""`traceparent` in real Chromium: the scenario's origins get it, a third party never does."""

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from prober.contracts.config import Config
from prober.contracts.result import Outcome
from prober.contracts.tracecontext import span_id
from prober.demo.site import serve_on_loopback
from prober.supervise.runner import WorkerRunner

Load = Callable[[Path], Config]
MakeRunner = Callable[..., WorkerRunner]
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")
PIXEL = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


class Origin:
    """A real HTTP server on 127.0.0.1 remembering each request's path and traceparent."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.port = 0
        self.pages: dict[str, str] = {}
        self.statuses: dict[str, int] = {}

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.path, request.headers.get("traceparent")))
        if request.path.endswith(".png"):
            return web.Response(body=PIXEL, content_type="image/png")
        return web.Response(
            text=self.pages.get(request.path, ""),
            status=self.statuses.get(request.path, 200),
            content_type="text/html",
        )


@pytest.fixture
async def origins() -> AsyncIterator[tuple[Origin, Origin, Origin]]:
    """The app, its API on another port (listed), and a third party (not listed)."""
    servers = (Origin(), Origin(), Origin())
    async with contextlib.AsyncExitStack() as stack:
        for server in servers:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", server.handle)
            server.port = await stack.enter_async_context(serve_on_loopback(app))
        yield servers


async def test_own_origins_get_the_runs_traceparent_and_a_third_party_none(
    origins: tuple[Origin, Origin, Origin],
    write_config: Callable[[str], Path],
    load: Load,
    make_runner: MakeRunner,
) -> None:
    app, api, third = origins
    api_url, third_url = f"http://127.0.0.1:{api.port}", f"http://127.0.0.1:{third.port}"
    app.pages = {
        "/one": f'<img src="{api_url}/one.png"><img src="{third_url}/one.png">',
        "/two": f'<img src="{api_url}/two.png"><img src="{third_url}/two.png"><p>ready</p>',
    }
    config = load(
        write_config(f"""
        scenarios:
          - name: traced
            interval: 60s
            timeout: 20s
            trace_propagation_hosts: ["127.0.0.1:{api.port}"]
            steps:
              - name: first
                actions:
                  - goto: "http://127.0.0.1:{app.port}/one"
              - name: second
                actions:
                  - goto: "http://127.0.0.1:{app.port}/two"
                  - wait_for: "text=ready"
        """)
    )
    result = await make_runner(config).run(config.scenario("traced"))
    assert result.result is Outcome.SUCCESS, result.error
    assert result.trace_id is not None and re.fullmatch("[0-9a-f]{32}", result.trace_id)

    def parents(origin: Origin) -> dict[str, str]:
        found = {}
        for path, header in origin.seen:
            assert header is not None, f"{path} came without traceparent"
            match = TRACEPARENT.match(header)
            assert match is not None, header
            assert match[1] == result.trace_id
            found[path] = match[2]
        return found

    # Each step's requests hang under that step's span, which the parent exports.
    assert parents(app) == {
        "/one": span_id(result.trace_id, "first"),
        "/two": span_id(result.trace_id, "second"),
    }
    assert parents(api) == {
        "/one.png": span_id(result.trace_id, "first"),
        "/two.png": span_id(result.trace_id, "second"),
    }
    assert third.seen == [("/one.png", None), ("/two.png", None)]  # asked, without the header


async def test_each_run_has_its_own_trace(
    origins: tuple[Origin, Origin, Origin],
    write_config: Callable[[str], Path],
    load: Load,
    make_runner: MakeRunner,
) -> None:
    app = origins[0]
    config = load(
        write_config(f"""
        scenarios:
          - name: traced
            interval: 60s
            timeout: 20s
            steps:
              - name: only
                actions:
                  - goto: "http://127.0.0.1:{app.port}/"
        """)
    )
    runner = make_runner(config)
    first = await runner.run(config.scenario("traced"))
    second = await runner.run(config.scenario("traced"))
    assert first.trace_id != second.trace_id
    headers = [header for _, header in app.seen]
    assert len(headers) == 2 and headers[0] != headers[1]
    assert [h and TRACEPARENT.match(h)[1] for h in headers] == [  # type: ignore[index]
        first.trace_id,
        second.trace_id,
    ]
