"""Runs exported as OTLP/HTTP spans to a real receiver, decoded with opentelemetry-proto."""

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from prober.contracts.tracecontext import span_id
from tests.worker.test_propagation import TRACEPARENT, Origin, origins  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-in-the-url-9c1e"


class Receiver:
    """An OTLP/HTTP traces endpoint: POST /v1/traces, protobuf in, protobuf out."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            import gzip

            body = gzip.decompress(body)
        decoded = ExportTraceServiceRequest()
        decoded.ParseFromString(body)
        self.requests.append(decoded)
        self.headers.append(dict(request.headers))
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    def spans(self) -> list[Span]:
        return [
            span
            for request in self.requests
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/v1/traces", found.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    found.url = f"http://127.0.0.1:{port}"
    yield found
    await runner.cleanup()


async def prober_run(
    config: Path, name: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`prober run`, not blocking the loop that serves the targets and the receiver."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "prober",
        "run",
        "--config",
        str(config),
        name,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return subprocess.CompletedProcess([], process.returncode, stdout.decode(), stderr.decode())


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}


async def test_a_run_is_one_span_with_a_span_per_step_in_the_trace_its_page_sent(
    origins: tuple[Origin, Origin, Origin],  # noqa: F811
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    app, api, third = origins
    api_url, third_url = f"http://127.0.0.1:{api.port}", f"http://127.0.0.1:{third.port}"
    app.pages["/one"] = f'<img src="{api_url}/a.png"><img src="{third_url}/b.png">'
    app.statuses["/broken"] = 503
    config = tmp_path / "scenarios.yaml"
    config.write_text(f"""\
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
        component: backend
        actions:
          - goto: "http://127.0.0.1:{app.port}/broken?key=${{TOKEN}}"
""")
    env = {
        **clean_environ(),
        "TOKEN": SECRET,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=team-a",
        "OTEL_SERVICE_NAME": "prober-test",
    }
    completed = await prober_run(config, "traced", env)
    assert completed.returncode == 1, completed.stderr
    result = json.loads(completed.stdout)
    assert result["result"] == "failure" and result["failed_step"] == "second"
    trace_id = result["trace_id"]

    spans = receiver.spans()
    assert receiver.headers[0]["x-tenant"] == "team-a"  # OTEL_EXPORTER_OTLP_HEADERS applies
    resource = receiver.requests[0].resource_spans[0].resource
    attributes = {a.key: a.value.string_value for a in resource.attributes}
    assert attributes["service.name"] == "prober-test"
    by_name = {span.name: span for span in spans}
    assert sorted(by_name) == ["browser launch", "first", "second", "traced"]
    assert len(spans) == 4  # one run span, the launch and one per step
    assert {span.trace_id.hex() for span in spans} == {trace_id}

    run = by_name["traced"]
    assert run.span_id.hex() == span_id(trace_id) and run.parent_span_id == b""
    assert run.status.code == Status.STATUS_CODE_ERROR
    for name in ("browser launch", "first", "second"):
        assert by_name[name].parent_span_id == run.span_id
    steps = {s["name"]: s for s in result["steps"]}
    for name in ("first", "second"):
        span = by_name[name]
        assert span.span_id.hex() == span_id(trace_id, name)
        seconds = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e9
        assert seconds == pytest.approx(steps[name]["duration_seconds"], abs=1e-6)
        assert run.start_time_unix_nano <= span.start_time_unix_nano
        assert span.end_time_unix_nano <= run.end_time_unix_nano
    assert by_name["first"].status.code == Status.STATUS_CODE_OK
    assert by_name["second"].status.code == Status.STATUS_CODE_ERROR
    assert by_name["first"].end_time_unix_nano <= by_name["second"].start_time_unix_nano
    step_attributes = {a.key: a.value.string_value for a in by_name["second"].attributes}
    assert step_attributes["prober.component"] == "backend"
    # The error in the span status is masked like everywhere else.
    message = by_name["second"].status.message
    assert message == result["error"] and "key=********" in message
    assert all(SECRET.encode() not in r.SerializeToString() for r in receiver.requests)

    # The page's requests to its own origins carried this trace, each under its step.
    for origin in (app, api):
        for path, header in origin.seen:
            assert header is not None, path
            match = TRACEPARENT.match(header)
            assert match is not None and match[1] == trace_id
    assert {p: TRACEPARENT.match(h or "")[2] for p, h in api.seen} == {  # type: ignore[index]
        "/a.png": span_id(trace_id, "first")
    }
    assert third.seen and all(header is None for _, header in third.seen)


def test_without_otel_variables_the_sdk_is_never_imported() -> None:
    code = (
        "import sys, os\n"
        "from prober import cli, service\n"
        "from prober.record import traces\n"
        "assert traces.sink_from_environment(os.environ, None) is None\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "assert not loaded, loaded\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_environ(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),
    ],
)
def test_export_is_on_only_when_an_endpoint_is_set(environ: dict[str, str], on: bool) -> None:
    from prober.record import traces

    assert traces.enabled(environ) is on
