"""Shared fixtures: a real target site on 127.0.0.1, the system Chromium, leftover checks."""

import asyncio
import contextlib
import os
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from prober.contracts.config import Config, load_config
from prober.contracts.secrets import Redactor
from prober.demo.site import make_app, serve_on_loopback
from prober.supervise import processes
from prober.supervise.browser import DEFAULT_ARGS, find_browser
from prober.supervise.runner import WorkerRunner

USER = "probe-user"
PASSWORD = "s3cr&t pa%ss+wörd/?="


@pytest.fixture(scope="session", autouse=True)
def subreaper() -> None:
    """Like `prober serve`: orphans of killed workers re-parent to us and can be checked."""
    processes.become_subreaper()


@pytest.fixture(scope="session")
def browser_path() -> Path:
    return find_browser(None)


@dataclass
class Target:
    """The demo site plus knobs to make it misbehave."""

    url: str = ""
    delays: dict[str, float] = field(default_factory=dict)


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    state = Target()

    @web.middleware
    async def delay(request: web.Request, handler: Handler) -> web.StreamResponse:
        seconds = state.delays.get(request.path)
        if seconds:
            await asyncio.sleep(seconds)
        return await handler(request)

    app = make_app(USER, PASSWORD)
    app.middlewares.append(delay)

    async def never(request: web.Request) -> web.Response:
        return web.Response(text="<h1>Loading…</h1>", content_type="text/html")

    async def server_error(request: web.Request) -> web.Response:
        return web.Response(status=500, text="<h1>Internal error</h1>", content_type="text/html")

    app.router.add_get("/never", never)
    app.router.add_get("/error", server_error)
    async with serve_on_loopback(app) as port:
        state.url = f"http://127.0.0.1:{port}"
        yield state


@pytest.fixture
def target_env(target: Target, monkeypatch: pytest.MonkeyPatch) -> Target:
    monkeypatch.setenv("APP_URL", target.url)
    monkeypatch.setenv("PROBE_USER", USER)
    monkeypatch.setenv("PROBE_PASSWORD", PASSWORD)
    return target


SIGN_IN_STEP_NAMES = ("app_page_loaded", "idp_page_loaded", "credentials_accepted", "back_in_app")


def sign_in_scenario(
    name: str = "sso-login", interval: str = "60s", timeout: str = "20s", extra: str = ""
) -> str:
    """The demo's sign-in flow as one entry of a `scenarios:` list (YAML at column 2).

    `extra` adds fields to the scenario, e.g. `retries: 1`.
    """
    fields = "".join(f"    {line}\n" for line in extra.splitlines())
    return f"""\
  - name: {name}
    interval: {interval}
    timeout: {timeout}
{fields}    steps:
      - name: app_page_loaded
        actions:
          - goto: "${{APP_URL}}/"
          - wait_for: "text=Sign in with IdP"
      - name: idp_page_loaded
        actions:
          - click: "text=Sign in with IdP"
          - wait_for: "input[name=login]"
      - name: credentials_accepted
        actions:
          - fill: {{selector: "input[name=login]", value: "${{PROBE_USER}}"}}
          - fill: {{selector: "input[name=password]", value: "${{PROBE_PASSWORD}}"}}
          - click: "button[type=submit]"
      - name: back_in_app
        actions:
          - wait_for_url: "**/projects"
          - expect_text: {{selector: "h2", text: "Choose a project"}}
"""


# The same steps, for snippets that put `scenarios:` at four spaces before dedenting.
SIGN_IN_STEPS = "\n" + textwrap.indent(sign_in_scenario().split("\n", 3)[3], "    ")


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a scenario file from an indented YAML snippet; returns its path."""

    def write(text: str, name: str = "scenarios.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def make_runner(browser_path: Path) -> Callable[[Config], WorkerRunner]:
    def make(config: Config, **kwargs: object) -> WorkerRunner:
        return WorkerRunner(
            browser_path=str(browser_path),
            browser_args=DEFAULT_ARGS,
            redact=Redactor(config.secrets),
            python_path=[str(config.path.parent)],
            **kwargs,  # type: ignore[arg-type]
        )

    return make


@pytest.fixture
def load(target_env: Target) -> Callable[[Path], Config]:
    return lambda path: load_config(path)


def leftover_processes() -> list[str]:
    """Our descendants that belong to a worker run, and our zombie children."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                found.append(f"zombie {child.pid} {child.name()}")
            elif processes.RUN_TAG_ENV in child.environ():
                found.append(f"{child.pid} {child.name()} {' '.join(child.cmdline()[:3])}")
        except psutil.Error:
            continue
    return found


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """Every test must leave no worker, driver or browser process and no zombie behind."""
    yield
    leftovers = leftover_processes()
    for _ in range(20):  # asyncio's child watcher may still be reaping the last worker
        if not leftovers:
            break
        time.sleep(0.1)
        leftovers = leftover_processes()
    if leftovers:  # clean up so one leak does not fail every later test too
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if processes.RUN_TAG_ENV in child.environ():
                    child.kill()
        time.sleep(0.5)
        processes.reap_orphans(exclude=set())
    assert not leftovers, f"processes left behind: {leftovers}"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PROBER_* settings leak in from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("PROBER_"):
            monkeypatch.delenv(key)
