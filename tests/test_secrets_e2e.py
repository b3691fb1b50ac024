"""A hostile target echoes the credentials back in every spelling; nothing prober writes
contains any of them.

The target receives the credentials the way a real one does (a query string, a form
POST, URL userinfo) and sends them back HTML-escaped three ways, JSON-escaped the Go
way, in base64 at each alignment, in headers, cookies, a redirect's Location, console
messages and sub-resource URLs. A real `prober serve` (real Chromium, PROBER_DATA_DIR)
runs a declarative scenario against it that fails at its last step, so artifacts are
kept, plus scripts that raise with `repr()` of a secret and crash after printing one.
Then every output is scanned: logs, /metrics, the API, the status page, the SQLite
files (with -wal) and every artifact, trace zip members included.
"""

import asyncio
import base64
import html
import json
import secrets
import shutil
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import aiohttp
import pytest
from aiohttp import web

from prober.demo.site import serve_on_loopback
from tests.artifact_checks import base64_cores, blobs, find_spellings, tree_leaks
from tests.test_serve import free_port, serving

SCRIPTS = """
import os
import sys


async def raise_repr(page, step, params):
    async with step("check"):
        raise AssertionError(f"wrong password {params['password']!r} for {params['login']!r}")


async def key_error(page, step, params):
    accounts = {}
    async with step("lookup"):
        accounts[params["password"]]


async def crash(page, step, params):
    async with step("print_and_die"):
        print("x" * 5000, file=sys.stderr)
        print(f"password={params['password']!r} login={params['login']}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(3)
"""


@dataclass
class Hostile:
    """What the target received (so the test knows the browser really sent it)."""

    url: str = ""
    received: dict[str, str] = field(default_factory=dict)
    served: list[bytes] = field(default_factory=list)


def base64_at_offsets(value: str) -> list[str]:
    """The value inside longer base64 strings, at byte offsets 0, 1 and 2."""
    return [base64.b64encode(b"x" * k + value.encode() + b"tail").decode() for k in range(3)] + [
        base64.urlsafe_b64encode(b"??" + value.encode()).decode()
    ]


def echo(values: list[str]) -> str:
    """HTML that writes each value in the spellings real pages use."""
    parts = []
    for v in values:
        jinja = html.escape(v, quote=False).replace('"', "&#34;").replace("'", "&#39;")
        rails = html.escape(v, quote=False).replace('"', "&quot;").replace("'", "&#39;")
        go_json = json.dumps(v).replace("&", "\\u0026").replace("<", "\\u003c")
        go_json = go_json.replace(">", "\\u003e")
        parts.append(
            f"<p>{v}</p><p>{jinja}</p><p>{rails}</p><p>{html.escape(v)}</p>"
            f'<input value="{html.escape(v)}">'
            f'<div data-props="{html.escape(json.dumps({"v": v}))}">'
            f"</div><pre>{' '.join(base64_at_offsets(v))}</pre>"
            f'<img src="/px/{quote(v, safe="")}/{quote(v)}?q={quote_plus(v)}&r={v}">'
            f"<script>var v = {go_json}; console.log(v); console.error('leak: ' + v);"
            f"fetch('/api/echo?v=' + encodeURIComponent(v)); </script>"
        )
    return "<!doctype html><title>Welcome</title><h1>Welcome</h1>" + "".join(parts)


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    state = Hostile()

    def page(text: str, **headers: str) -> web.Response:
        state.served.append(text.encode())
        return web.Response(text=text, content_type="text/html", headers=headers)

    async def login_form(request: web.Request) -> web.Response:
        state.received["token"] = request.query.get("token", "")
        return page(
            f"<form method=post action='/login?token={quote_plus(state.received['token'])}'>"
            "<input name=login><input name=password type=password><input name=pin>"
            f"<button type=submit>Sign in</button></form>{echo([state.received['token']])}"
        )

    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        for key in ("login", "password", "pin"):
            state.received[key] = str(form.get(key, ""))
        login, password = state.received["login"], state.received["password"]
        location = f"/welcome?login={quote_plus(login)}&pw={quote(password, safe='')}"
        raise web.HTTPFound(location, headers={"X-Echo": f"{login}:{password}"})

    async def welcome(request: web.Request) -> web.Response:
        values = [request.query.get("login", ""), request.query.get("pw", "")]
        basic = base64.b64encode(f"{values[0]}:{values[1]}".encode()).decode()
        pin = state.received.get("pin", "")
        body = echo(values) + f'<table><tr><td>{pin}</td></tr></table><p id=pin data-pin="{pin}">'
        response = page(body, **{"X-Basic": f"Basic {basic}", "X-Pw": quote(values[1])})
        response.set_cookie("session", base64.urlsafe_b64encode(values[1].encode()).decode())
        return response

    async def basic(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="probe"'})
        state.received["basic"] = base64.b64decode(header[6:]).decode()
        return page(f"<p>{header}</p>{echo([state.received['basic']])}")

    async def api_echo(request: web.Request) -> web.Response:
        value = request.query.get("v", "")
        text = json.dumps({"echo": value, "pin": state.received.get("pin", "")})
        state.served.append(text.encode())
        return web.Response(text=text.replace("&", "\\u0026"), content_type="application/json")

    async def pixel(request: web.Request) -> web.Response:
        return web.Response(body=b"GIF89a", content_type="image/gif")

    app = web.Application()
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_get("/welcome", welcome)
    app.router.add_get("/basic", basic)
    app.router.add_get("/api/echo", api_echo)
    app.router.add_get("/px/{tail:.*}", pixel)
    async with serve_on_loopback(app) as port:
        state.url = f"http://127.0.0.1:{port}"
        yield state


def scenario_file(directory: Path, target: str) -> Path:
    (directory / "hostile_scripts.py").write_text(SCRIPTS)
    closed = f"127.0.0.1:{free_port()}"  # nothing listens: the last step fails at once
    host, port = target.removeprefix("http://").split(":")
    params = 'params: {password: "${PW}", login: "${LOGIN}"}'
    text = f"""\
    scenarios:
      - name: hostile
        interval: 1h
        timeout: 30s
        steps:
          - name: login_page
            actions:
              - goto: "{target}/login?token=${{TOKEN}}"
              - wait_for: "input[name=login]"
          - name: signed_in
            actions:
              - fill: {{selector: "input[name=login]", value: "${{LOGIN}}"}}
              - fill: {{selector: "input[name=password]", value: "${{PW}}"}}
              - fill: {{selector: "input[name=pin]", value: "${{PIN}}"}}
              - click: "button[type=submit]"
              - wait_for: "text=Welcome"
          - name: basic_auth
            actions:
              - goto: "http://${{LOGIN}}:${{PW}}@{host}:{port}/basic"
          - name: tenant
            actions:
              - goto: "http://${{TENANT}}.localhost:{closed.split(":")[1]}/?pw=${{PW}}"
      - name: repr-error
        interval: 1h
        timeout: 20s
        script: "hostile_scripts:raise_repr"
        {params}
      - name: key-error
        interval: 1h
        timeout: 20s
        script: "hostile_scripts:key_error"
        {params}
      - name: crash
        interval: 1h
        timeout: 20s
        script: "hostile_scripts:crash"
        {params}
    """
    path = directory / "scenarios.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def short_value_needles(pin: str) -> set[bytes]:
    """Where a short secret is masked: as a whole quoted string, form value or text."""
    return {f'"{pin}"'.encode(), f"'{pin}'".encode(), f"={pin}&".encode(), f">{pin}<".encode()}


async def test_no_spelling_of_any_secret_in_any_output(
    hostile: Hostile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suffix = secrets.token_hex(3)
    credentials = {
        "PW": f"p@ss w0rd!&x=1\"<'>{suffix}",
        "LOGIN": f"probe+{suffix}@example.com",
        "TOKEN": f"t0k/{secrets.token_urlsafe(12)}+=",
        "TENANT": f"Tenant{suffix}X",
    }
    pin = "q" + "".join(secrets.choice("xzjkv") for _ in range(2))
    for name, value in {**credentials, "PIN": pin}.items():
        monkeypatch.setenv(name, value)
    long_secrets = tuple(credentials.values())
    config = scenario_file(tmp_path, hostile.url)
    data_dir = tmp_path / "data"
    outputs: dict[str, bytes] = {}

    async with serving(config, tmp_path, data_dir=str(data_dir), log_level="DEBUG") as served:

        async def all_ran() -> bool:
            _, text = await served.get("/api/scenarios")
            return all(s["last_run"] for s in json.loads(text)["scenarios"])

        for _ in range(300):
            if await all_ran():
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("not every scenario ran within 60 s")
        _, runs_text = await served.get("/api/runs?limit=100")
        runs = json.loads(runs_text)["runs"]
        paths = ["/metrics", "/", "/api/scenarios", "/api/runs?limit=100"]
        paths += [f"/api/runs/{run['run_id']}" for run in runs]
        for path in paths:
            status, text = await served.get(path)
            assert status == 200, path
            outputs[f"GET {path}"] = text.encode()
        async with aiohttp.ClientSession() as session:
            for run in runs:
                for artifact in run["artifacts"]:
                    async with session.get(served.url + artifact["url"]) as response:
                        copy = tmp_path / "served" / artifact["name"]
                        copy.parent.mkdir(exist_ok=True)
                        copy.write_bytes(await response.read())
                        outputs |= {f"GET {k}": v for k, v in blobs(copy).items()}
        # The WAL holds recent rows until a checkpoint: read it while prober runs.
        live = tmp_path / "live-db"
        shutil.copytree(data_dir, live, ignore=shutil.ignore_patterns("artifacts"))
    assert any(p.name.endswith("-wal") for p in live.iterdir()), list(live.iterdir())
    outputs["serve stderr"] = served.stderr_path.read_bytes()

    # The target really got every credential, so the echo tested something.
    # Unencoded in the goto URL, so its `+` arrives form-decoded as a space.
    assert hostile.received["token"] == credentials["TOKEN"].replace("+", " ")
    assert hostile.received["login"] == credentials["LOGIN"]
    assert hostile.received["password"] == credentials["PW"]
    assert hostile.received["pin"] == pin
    # The scanner finds what the target served: an empty scan proves nothing otherwise.
    served_pages = b"".join(hostile.served)
    pw = credentials["PW"]
    jinja = html.escape(pw, quote=False).replace('"', "&#34;").replace("'", "&#39;")
    go_json = json.dumps(pw)[1:-1].replace("&", "\\u0026").replace("<", "\\u003c")
    go_json = go_json.replace(">", "\\u003e")
    for needle in (jinja, go_json, quote_plus(pw), quote(pw, safe="")):
        assert needle.encode() in served_pages, needle
    standard = [c for c in base64_cores(pw.encode()) if not {"-", "_"} & set(c)]
    assert len(standard) == 3 and all(c.encode() in served_pages for c in standard)

    by_name = {run["scenario"]: run for run in runs}
    assert by_name["hostile"]["result"] == "failure", by_name["hostile"]
    assert by_name["hostile"]["failed_step"] == "tenant"
    assert {a["name"].rsplit("-", 1)[1] for a in by_name["hostile"]["artifacts"]} == {
        "screenshot.png",
        "trace.zip",
        "console.json",
        "network.har",
    }
    assert "wrong password" in by_name["repr-error"]["error"]
    assert by_name["key-error"]["error"].startswith("KeyError")
    assert "exit code 3" in by_name["crash"]["error"]
    assert "password=" in by_name["crash"]["error"]

    found = find_spellings(outputs, long_secrets)
    found += tree_leaks(data_dir, long_secrets) + tree_leaks(live, long_secrets)
    everything = {**outputs, **blobs_below(data_dir), **blobs_below(live)}
    found += [
        f"{name}: {needle!r}"
        for name, blob in everything.items()
        for needle in short_value_needles(pin)
        if needle in blob
    ]
    assert not found, "\n".join(found[:40])


def blobs_below(directory: Path) -> dict[str, bytes]:
    named: dict[str, bytes] = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        named |= blobs(path)
    return named
