"""Scrubbing a trace zip, and the spellings of a secret that browsers and traces produce."""

import asyncio
import hashlib
import json
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import async_playwright

from prober.contracts.secrets import MASK, Redactor
from prober.demo.site import serve_on_loopback
from prober.supervise import processes
from prober.supervise.browser import DEFAULT_ARGS
from prober.worker.capture import scrub_trace
from tests.artifact_checks import spellings, text_spellings
from tests.conftest import leftover_processes

# Characters that each encoder treats differently: form encoding keeps `*` and escapes
# `~`, encodeURIComponent keeps `!'()*~`, JSON escapes `"` and `\`, HTML escapes `<&"'`.
AWKWARD = "p*a~s!s'(w)\"o\\r<d> ö&+/?= "
SESSION = "session-4f1c9e2a7b"
BEARER = "Bearer tok-8d2e61c0f5"


async def reap_browser_helpers() -> None:
    """pytest is a subreaper (tests/conftest.py): Chromium's helpers re-parent to it."""
    for _ in range(50):
        processes.reap_orphans(exclude=set())
        if not leftover_processes():
            return
        await asyncio.sleep(0.1)


def test_every_spelling_of_an_awkward_secret_is_masked() -> None:
    redact = Redactor([AWKWARD])
    for text in text_spellings(AWKWARD):
        assert redact(f"<{text}>") == f"<{MASK}>", text
        assert redact.bytes(f"<{text}>".encode()) == f"<{MASK}>".encode(), text


def test_browser_form_encoding_is_masked() -> None:
    # What Chromium sends for <input name=p value="a*b~c d"> in a urlencoded POST.
    assert Redactor(["a*b~c d"])("p=a*b%7Ec+d") == f"p={MASK}"


def test_trace_members_are_scrubbed_and_renamed_resources_stay_referenced(tmp_path: Path) -> None:
    body = f"login=u&password={AWKWARD}".encode()
    old = hashlib.sha1(body).hexdigest()
    untouched = b"\x89PNG binary without secrets"
    keep = hashlib.sha1(untouched).hexdigest()
    network = json.dumps({"postData": {"_sha1": f"{old}.dat", "text": AWKWARD}}) + "\n"
    source, target = tmp_path / "raw.zip", tmp_path / "scrubbed.zip"
    with zipfile.ZipFile(source, "w") as raw:
        raw.writestr("trace.network", network)
        raw.writestr("trace.trace", json.dumps({"params": {"value": AWKWARD}}) + "\n")
        raw.writestr(f"resources/{old}.dat", body)
        raw.writestr(f"resources/{keep}.png", untouched)

    scrub_trace(source, target, Redactor([AWKWARD]))

    with zipfile.ZipFile(target) as scrubbed:
        new = hashlib.sha1(f"login=u&password={MASK}".encode()).hexdigest()
        assert sorted(scrubbed.namelist()) == sorted(
            ["trace.network", "trace.trace", f"resources/{new}.dat", f"resources/{keep}.png"]
        )
        record = json.loads(scrubbed.read("trace.network"))
        assert record == {"postData": {"_sha1": f"{new}.dat", "text": MASK}}
        assert json.loads(scrubbed.read("trace.trace")) == {"params": {"value": MASK}}
        assert scrubbed.read(f"resources/{keep}.png") == untouched
        for name in scrubbed.namelist():
            data = scrubbed.read(name)
            assert not [s for s in spellings((AWKWARD,)) if s in data], name


@pytest.fixture
async def cookie_site() -> AsyncIterator[str]:
    """A page that sets a session cookie, as an IdP does after a sign-in."""

    async def home(request: web.Request) -> web.Response:
        response = web.Response(text="<h1>Signed in</h1>", content_type="text/html")
        response.set_cookie("sid", SESSION, httponly=True)
        return response

    app = web.Application()
    app.router.add_get("/", home)
    async with serve_on_loopback(app) as port:
        yield f"http://127.0.0.1:{port}"


async def test_a_real_traces_credential_headers_and_cookies_are_masked(
    browser_path: Path, cookie_site: str, tmp_path: Path
) -> None:
    """Session cookies and bearer tokens are no config secret, yet they let a trace's
    reader act as the probe user: masked in the trace's network log as in the HAR."""
    raw, scrubbed = tmp_path / "raw.zip", tmp_path / "scrubbed.zip"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(browser_path), args=list(DEFAULT_ARGS)
        )
        context = await browser.new_context(extra_http_headers={"Authorization": BEARER})
        await context.tracing.start(snapshots=True)
        page = await context.new_page()
        await page.goto(f"{cookie_site}/")
        await page.reload()  # the second request sends the cookie back
        await context.tracing.stop(path=raw)
        await browser.close()
    await reap_browser_helpers()
    with zipfile.ZipFile(raw) as archive:
        assert any(SESSION.encode() in archive.read(n) for n in archive.namelist())

    scrub_trace(raw, scrubbed, Redactor([]))

    with zipfile.ZipFile(scrubbed) as archive:
        for name in archive.namelist():
            data = archive.read(name)
            assert SESSION.encode() not in data and BEARER.encode() not in data, name
        events = [json.loads(line) for line in archive.read("trace.network").splitlines()]
    headers = [
        h
        for e in events
        for m in (e["snapshot"]["request"], e["snapshot"]["response"])
        for h in m["headers"]
        if h["name"].lower() in ("cookie", "set-cookie", "authorization")
    ]
    assert headers and all(h["value"] == MASK for h in headers)
