"""The /api endpoints over real HTTP, every response checked against prober/http/openapi.yaml."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, fields
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from prober.contracts.config import Config
from prober.contracts.result import Outcome, RunResult
from prober.contracts.secrets import Redactor
from prober.http import api, pages, statuspage
from prober.http.ratelimit import TriggerLimiter
from prober.http.server import Health, make_app
from prober.record.history import History, Retention
from prober.record.metrics import ProberMetrics
from prober.record.sinks import Recorder, RunLog
from prober.schedule.scheduler import Scheduler
from tests.apicheck import SPEC, ApiClient, Reply, template_for
from tests.conftest import PASSWORD, sign_in_scenario
from tests.fakes import FakeRun, NoScheduledRuns

TOKEN = "t0ken-for-tests-4f8a"
RETENTION = Retention(3600.0, 7200.0)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = (
    "scenarios:\n"
    + sign_in_scenario("login", interval="1h", timeout="30s", extra="retries: 1")
    + """\
  - name: other
    interval: 1h
    timeout: 30s
    steps:
      - name: home
        actions:
          - goto: "${APP_URL}/"
"""
)


@dataclass
class Server:
    client: ApiClient
    fake: FakeRun
    history: History
    scheduler: Scheduler
    data_dir: Path
    app: web.Application


ServerFactory = Callable[..., Awaitable[Server]]


@pytest.fixture
async def serve_api(
    tmp_path: Path, write_config: Callable[[str], Path], load: Callable[[Path], Config]
) -> AsyncIterator[ServerFactory]:
    """The API wired as in `prober serve`, with a scripted runner instead of Chromium."""
    cleanups: list[Callable[[], Awaitable[object]]] = []

    async def start(
        token: str | None = TOKEN,
        cooldown: float = 0.0,
        per_minute: int = 600,
        outcomes: tuple[Outcome, ...] = (Outcome.SUCCESS,),
        config_text: str = CONFIG,
        retention: Retention = RETENTION,
    ) -> Server:
        config = load(write_config(config_text))
        data_dir = tmp_path / "data"
        fake = FakeRun(outcomes)
        history = await History.open(data_dir, retention, lambda: None)
        metrics = ProberMetrics(CollectorRegistry(), (1.0,), (1.0,), (1.0,))
        scheduler = Scheduler(
            fake,
            Recorder([metrics, history, RunLog()]),
            2,
            max_start_offset=3600.0,
            rng=NoScheduledRuns(),
        )
        scheduler.start(config.scenarios)
        app = make_app(CollectorRegistry(), Health(lambda: True, lambda: None))
        redact = Redactor([*config.secrets, TOKEN])
        api.install(
            app,
            api.Api(
                scheduler=scheduler,
                history=history,
                redact=redact,
                token=token,
                artifacts_dir=data_dir / "artifacts",
                limiter=TriggerLimiter(cooldown, per_minute),
            ),
        )
        statuspage.install(
            app, pages.StatusSource(scheduler, history, redact, data_dir / "artifacts")
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        session = aiohttp.ClientSession()

        async def stop() -> None:
            await session.close()
            await scheduler.stop(grace=5.0)
            await runner.cleanup()
            await history.close()

        cleanups.append(stop)
        client = ApiClient(session, f"http://127.0.0.1:{port}")
        return Server(client, fake, history, scheduler, data_dir, app)

    yield start
    for cleanup in cleanups:
        await cleanup()


async def finished(server: Server, run_id: str) -> Reply:
    """Poll the run until it is in history (the fake runner takes milliseconds)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reply = await server.client.get(f"/api/runs/{run_id}")
        assert reply.status == 200
        if reply.json["state"] == "finished":
            return reply
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} did not finish")


async def test_every_route_is_documented_and_every_documented_path_served(
    serve_api: ServerFactory,
) -> None:
    server = await serve_api()
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in server.app.router.routes()
        if route.resource is not None and route.resource.canonical.startswith("/api/")
    }
    documented = {(method, path) for path, ops in SPEC["paths"].items() for method in ops}
    assert {(m, p) for m, p in served if m != "head"} == documented
    reply = await server.client.get("/api/openapi.yaml")
    assert reply.status == 200 and b"openapi: 3.1.0" in reply.body
    assert template_for("/api/runs/x/artifacts/y") == "/api/runs/{run_id}/artifacts/{name}"


async def test_trigger_poll_and_list(serve_api: ServerFactory) -> None:
    server = await serve_api()
    accepted = await server.client.post("/api/scenarios/login/runs", headers=AUTH)
    assert accepted.status == 202
    run_id = accepted.json["run_id"]
    assert accepted.headers["Location"] == f"/api/runs/{run_id}" == accepted.json["url"]
    run = (await finished(server, run_id)).json
    assert run["result"] == "success" and run["scenario"] == "login" and run["attempt"] == 1
    assert [s["name"] for s in run["steps"]] == ["home", "login"]

    listed = await server.client.get("/api/runs?scenario=login")
    assert [r["run_id"] for r in listed.json["runs"]] == [run_id]
    scenarios = await server.client.get("/api/scenarios")
    by_name = {s["name"]: s for s in scenarios.json["scenarios"]}
    assert by_name["login"]["last_run"]["run_id"] == run_id
    assert by_name["other"]["last_run"] is None


async def test_filters_and_limit(serve_api: ServerFactory) -> None:
    server = await serve_api(outcomes=(Outcome.FAILURE, Outcome.SUCCESS))
    await server.scheduler.run_now("login")  # a failure, then its successful retry
    await server.scheduler.run_now("other")
    runs = (await server.client.get("/api/runs")).json["runs"]
    assert [(r["scenario"], r["result"], r["attempt"]) for r in runs] == [
        ("other", "success", 1),
        ("login", "success", 2),
        ("login", "failure", 1),
    ]
    failures = (await server.client.get("/api/runs?result=failure")).json["runs"]
    assert [r["failed_step"] for r in failures] == ["login"]
    assert failures[0]["error"] == "login button not found"
    assert len((await server.client.get("/api/runs?limit=1")).json["runs"]) == 1
    assert len((await server.client.get("/api/runs?limit=500")).json["runs"]) == 3


async def test_scenario_config_is_shown_with_secrets_masked(serve_api: ServerFactory) -> None:
    server = await serve_api()
    reply = await server.client.get("/api/scenarios")
    login = next(s for s in reply.json["scenarios"] if s["name"] == "login")
    assert login["config"]["retries"] == 1 and login["config"]["interval"] == 3600
    fills = [
        action
        for step in login["config"]["steps"]
        for action in step["actions"]
        if action["action"] == "fill"
    ]
    assert [fill["value"] for fill in fills] == ["********", "********"]
    assert fills[0]["selector"] == "input[name=login]"
    assert PASSWORD.encode() not in reply.body
    assert b"127.0.0.1:" not in reply.body  # APP_URL came from the environment too


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/runs/no-such-run", 404, "no run with id 'no-such-run'"),
        ("/api/runs/no-such-run/artifacts/x.png", 404, "no run with id"),
        ("/api/runs?limit=abc", 400, "limit must be an integer from 1 to 500"),
        ("/api/runs?limit=0", 400, "limit must be"),
        ("/api/runs?limit=-1", 400, "limit must be"),
        ("/api/runs?limit=501", 400, "limit must be"),
        ("/api/runs?limit=", 400, "limit must be"),
        ("/api/runs?limit=%C2%B2", 400, "limit must be"),  # '²' passes str.isdigit()
        ("/api/runs?limit=1.5", 400, "limit must be"),
        ("/api/runs?result=broken", 400, "result must be one of success, failure, timeout"),
        ("/api/runs?scenario=nope", 404, "unknown scenario 'nope'"),
    ],
)
async def test_bad_reads(serve_api: ServerFactory, path: str, status: int, message: str) -> None:
    server = await serve_api()
    reply = await server.client.get(path)
    assert (reply.status, reply.json["status"]) == (status, status)
    assert message in reply.json["error"]


async def test_unknown_api_paths_answer_json(serve_api: ServerFactory) -> None:
    server = await serve_api()
    async with server.client.session.get(server.client.base + "/api/nothing") as response:
        assert response.status == 404
        assert (await response.json())["status"] == 404
    async with server.client.session.delete(server.client.base + "/api/runs") as response:
        assert response.status == 405 and "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "a bearer token is required"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "a bearer token is required"),
        ({"Authorization": "Bearer "}, 401, "a bearer token is required"),
        ({"Authorization": "Bearer wrong"}, 401, "the bearer token is not valid"),
        ({"Authorization": f"Bearer {TOKEN}x"}, 401, "the bearer token is not valid"),
    ],
)
async def test_trigger_needs_the_right_token(
    serve_api: ServerFactory, headers: dict[str, str], status: int, message: str
) -> None:
    server = await serve_api()
    reply = await server.client.post("/api/scenarios/login/runs", headers=headers)
    assert reply.status == status and reply.json["error"] == message
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert server.fake.calls == []


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"\xc3(", TOKEN.encode() + b"\x80"])
async def test_a_token_of_raw_bytes_is_a_401_json_answer(
    serve_api: ServerFactory, raw: bytes
) -> None:
    """Header bytes that are not UTF-8 (sent raw: no client library would) are a wrong token."""
    server = await serve_api()
    host, port = server.client.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /api/scenarios/login/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
        b"Connection: close\r\nAuthorization: Bearer " + raw + b"\r\n\r\n"
    )
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 "), answer
    assert b"application/json" in head and b"WWW-Authenticate: Bearer" in head
    assert json.loads(body) == {"error": "the bearer token is not valid", "status": 401}
    assert server.fake.calls == []


async def test_trigger_is_disabled_without_a_token(serve_api: ServerFactory) -> None:
    server = await serve_api(token=None)
    for headers in ({}, AUTH):
        reply = await server.client.post("/api/scenarios/login/runs", headers=headers)
        assert reply.status == 403 and "disabled" in reply.json["error"]


async def test_trigger_unknown_scenario(serve_api: ServerFactory) -> None:
    server = await serve_api()
    reply = await server.client.post("/api/scenarios/nope/runs", headers=AUTH)
    assert reply.status == 404 and reply.json["error"] == "unknown scenario 'nope'"


async def test_trigger_while_running_is_a_conflict(serve_api: ServerFactory) -> None:
    server = await serve_api()
    server.fake.hold(0)
    first = await server.client.post("/api/scenarios/login/runs", headers=AUTH)
    assert first.status == 202
    # Accepted but maybe not started yet: busy all the same.
    second = await server.client.post("/api/scenarios/login/runs", headers=AUTH)
    assert second.status == 409 and "is running" in second.json["error"]
    await asyncio.wait_for(server.fake.held.wait(), 10)
    pending = await server.client.get(f"/api/runs/{first.json['run_id']}")
    assert pending.json == {"run_id": first.json["run_id"], "scenario": "login", "state": "pending"}
    third = await server.client.post("/api/scenarios/login/runs", headers=AUTH)
    assert third.status == 409
    server.fake.release.set()
    await finished(server, first.json["run_id"])
    assert len(server.fake.calls) == 1


async def test_trigger_cooldown_per_scenario(serve_api: ServerFactory) -> None:
    server = await serve_api(cooldown=300.0)
    first = await server.client.post("/api/scenarios/login/runs", headers=AUTH)
    await finished(server, first.json["run_id"])
    again = await server.client.post("/api/scenarios/login/runs", headers=AUTH)
    assert again.status == 429
    assert 290 <= int(again.headers["Retry-After"]) <= 300
    other = await server.client.post("/api/scenarios/other/runs", headers=AUTH)
    assert other.status == 202


async def test_trigger_global_limit(serve_api: ServerFactory) -> None:
    server = await serve_api(per_minute=1)
    first = await server.client.post("/api/scenarios/login/runs", headers=AUTH)
    assert first.status == 202
    other = await server.client.post("/api/scenarios/other/runs", headers=AUTH)
    assert other.status == 429 and 1 <= int(other.headers["Retry-After"]) <= 60
    await finished(server, first.json["run_id"])


async def test_no_response_contains_the_token(serve_api: ServerFactory) -> None:
    server = await serve_api()
    replies = [
        await server.client.post("/api/scenarios/login/runs", headers={"Authorization": "Bearer"}),
        await server.client.post("/api/scenarios/login/runs", headers=AUTH),
        await server.client.get("/api/scenarios"),
        await server.client.get("/"),
    ]
    assert all(TOKEN.encode() not in reply.body for reply in replies)


async def test_artifacts_are_served_only_when_the_run_lists_them(
    serve_api: ServerFactory,
) -> None:
    server = await serve_api()
    artifacts = server.data_dir / "artifacts"
    artifacts.mkdir(parents=True)
    files = {
        "r1-screenshot.png": b"\x89PNG\r\n\x1a\nfake",
        "r1-trace.zip": b"PK\x03\x04fake",
        "r1-timings.json": b'{"ok": true}',
        "r1-notes.txt": b"plain",
        "r2-screenshot.png": b"\x89PNGother",
    }
    for name, data in files.items():
        (artifacts / name).write_bytes(data)
    (server.data_dir / "outside.png").write_bytes(b"outside")
    listed = (*[n for n in files if n.startswith("r1-")], "r1-gone.png", "../outside.png")
    server.history.record(
        RunResult("login", "r1", Outcome.FAILURE, 1.0, time.time(), artifacts=listed),
        ended_at=time.time(),
    )
    expected = {
        "r1-screenshot.png": "image/png",
        "r1-trace.zip": "application/zip",
        "r1-timings.json": "application/json",
        "r1-notes.txt": "application/octet-stream",
    }
    for name, content_type in expected.items():
        reply = await server.client.get(f"/api/runs/r1/artifacts/{name}")
        assert reply.status == 200 and reply.body == files[name]
        assert reply.headers["Content-Type"] == content_type
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
    refused = [
        "r2-screenshot.png",  # exists, but belongs to another run
        "r1-gone.png",  # listed, but removed since
        "..%2Foutside.png",  # listed (a hostile record), but not a plain name
        "..%2F..%2Fdata%2Fhistory.sqlite3",
        "%2Fetc%2Fpasswd",
    ]
    for name in refused:
        reply = await server.client.get(f"/api/runs/r1/artifacts/{name}")
        assert reply.status == 404, name
        assert reply.body not in (b"outside", files["r2-screenshot.png"])
    run = (await server.client.get("/api/runs/r1")).json
    assert run["artifacts"][0] == {
        "name": "r1-screenshot.png",
        "url": "/api/runs/r1/artifacts/r1-screenshot.png",
    }


def test_the_run_schema_documents_every_field_the_api_returns() -> None:
    """A field added to RunResult reaches the API through its one serialiser: document it."""
    documented = SPEC["components"]["schemas"]["Run"]["properties"]
    assert set(documented) == {f.name for f in fields(RunResult)} | {"state", "ended_at"}
