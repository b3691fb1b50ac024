"""The status page, looked at the way a person would: in real headless Chromium."""

import struct
import time
import zlib
from pathlib import Path

from playwright.async_api import async_playwright

from prober.contracts.result import FailedRequest, Outcome, Reason, RunResult, StepResult
from prober.record.history import Retention
from prober.supervise import processes
from tests.conftest import PASSWORD, sign_in_scenario
from tests.http.test_api import Server, ServerFactory, serve_api  # noqa: F401  (fixture)

OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real, solid-colour PNG: the page shows failure screenshots as images."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def test_status_page_in_chromium(serve_api: ServerFactory, browser_path: Path) -> None:  # noqa: F811
    server = await serve_api(outcomes=(Outcome.SUCCESS, Outcome.SUCCESS, Outcome.FAILURE))
    for _ in range(3):
        await server.scheduler.run_now("login")  # success, success, then failure + retry
    artifacts = server.data_dir / "artifacts"
    artifacts.mkdir(parents=True)
    now = time.time()
    hostile = RunResult(
        scenario="other",
        run_id="r-hostile",
        result=Outcome.TIMEOUT,
        duration_seconds=30.0,
        started_at=now - 31,
        steps=(StepResult("home", 30.0, False),),
        failed_step="home",
        reason=Reason.TIMEOUT,
        error=f"<script>window.pwned = 1</script> page said {PASSWORD}",
        artifacts=("r-hostile-screenshot.png", "r-hostile-trace.zip"),
        failed_requests=(
            FailedRequest("home", "GET", f"https://app.example/api/<b>{PASSWORD}</b>", 503),
            FailedRequest("home", "GET", "https://cdn.example/app.js", error="net::ERR_TIMED_OUT"),
        ),
    )
    (artifacts / "r-hostile-screenshot.png").write_bytes(png(64, 40, (200, 30, 30)))
    (artifacts / "r-hostile-trace.zip").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    server.history.record(hostile, ended_at=now - 1)

    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(browser_path), args=BROWSER_ARGS
            )
            try:
                page = await browser.new_page(viewport={"width": 1100, "height": 900})
                response = await page.goto(server.client.base + "/")
                assert response is not None and response.status == 200
                assert await page.title() == "prober status"

                login = page.locator("#scenario-login")
                assert await login.locator(".state").inner_text() == "failure"
                # One bar per run: success, success, failure, and the retry's failure.
                assert await login.locator("svg.chart rect").count() == 4
                assert await login.locator("tr.failure-row").count() == 2
                assert "login button not found" in await login.inner_text()

                other = page.locator("#scenario-other")
                assert await other.locator(".state").inner_text() == "timeout"
                text = await other.inner_text()
                assert "<script>window.pwned = 1</script>" in text  # shown as text, not run
                requests = other.locator("ul.requests li")
                assert await requests.all_inner_texts() == [
                    "home: GET https://app.example/api/<b>********</b> → 503",
                    "home: GET https://cdn.example/app.js → net::ERR_TIMED_OUT",
                ]
                assert "********" in text and PASSWORD not in await page.content()
                assert await page.evaluate("window.pwned") is None

                shot = other.locator("img.shot")
                assert await shot.evaluate("img => img.complete && img.naturalWidth") == 64
                links = {
                    await a.inner_text(): await a.get_attribute("href")
                    for a in await other.locator("td a").all()
                    if await a.inner_text()
                }
                assert links["trace"] == "/api/runs/r-hostile/artifacts/r-hostile-trace.zip"
                assert (
                    links["screenshot"] == "/api/runs/r-hostile/artifacts/r-hostile-screenshot.png"
                )
                download = await page.request.get(server.client.base + links["trace"])
                assert download.headers["content-type"] == "application/zip"

                OUTPUT.mkdir(exist_ok=True)
                await page.screenshot(path=OUTPUT / "status-page.png", full_page=True)
            finally:
                await browser.close()
    finally:
        processes.reap_orphans(exclude=set())  # Chromium's helpers re-parent to us


DAY = 86400.0
SLO_CONFIG = "scenarios:\n" + sign_in_scenario(
    "login", interval="1h", timeout="30s", extra="slo: {objective: 99%, window: 7d}"
).replace(
    "      - name: idp_page_loaded\n", "      - name: idp_page_loaded\n        component: idp\n"
).replace(
    "      - name: credentials_accepted\n",
    "      - name: credentials_accepted\n        component: idp\n",
)


def login_run(run_id: str, outcome: Outcome, started_at: float, **fields: object) -> RunResult:
    """A run of the sign-in flow; a failed one stopped at `credentials_accepted`."""
    ok = outcome is Outcome.SUCCESS
    steps = [
        StepResult("app_page_loaded", 0.4, True),
        StepResult("idp_page_loaded", 0.9, True, component="idp"),
        StepResult("credentials_accepted", 1.5, ok, component="idp"),
    ]
    if ok:
        steps.append(StepResult("back_in_app", 0.2, True))
    return RunResult(
        scenario="login",
        run_id=run_id,
        result=outcome,
        duration_seconds=sum(s.duration_seconds for s in steps),
        started_at=started_at,
        steps=tuple(steps),
        failed_step=None if ok else "credentials_accepted",
        reason=None if ok else Reason.SELECTOR,
        **fields,  # type: ignore[arg-type]
    )


def fill_history(server: Server, now: float) -> RunResult:
    """A known mix: the page's shares are then computed by hand below. Returns the last run."""
    history = server.history
    for k in range(97):  # within the last 24 h
        ended = now - 3600 - k * 600
        history.record(login_run(f"ok-{k}", Outcome.SUCCESS, ended - 3), ended_at=ended)
    for k in range(100):  # between 2 and 6 days ago
        ended = now - 2 * DAY - k * 3000
        history.record(login_run(f"old-{k}", Outcome.SUCCESS, ended - 3), ended_at=ended)
    history.record(login_run("err-1", Outcome.ERROR, now - 5 * 3600), ended_at=now - 5 * 3600)
    history.record(login_run("fail-3d", Outcome.FAILURE, now - 3 * DAY), ended_at=now - 3 * DAY)
    history.record(login_run("fail-20d", Outcome.FAILURE, now - 20 * DAY), ended_at=now - 20 * DAY)
    last = login_run(
        "20261201T120000Z-<b>x<i>",
        Outcome.FAILURE,
        now - 1800,
        error=f"Timeout 5000ms waiting for <button> (password {PASSWORD})",
        artifacts=("20261201T120000Z-<b>x<i>-screenshot.png",),
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        browser_launch_seconds=0.31,
    )
    history.record(last, ended_at=now - 1797)
    return last


async def test_availability_budget_waterfall_and_run_page(
    serve_api: ServerFactory,  # noqa: F811
    browser_path: Path,
) -> None:
    server = await serve_api(
        config_text=SLO_CONFIG, retention=Retention(8 * DAY, 30 * DAY), outcomes=()
    )
    now = time.time()
    last = fill_history(server, now)
    artifacts = server.data_dir / "artifacts"
    artifacts.mkdir(parents=True)
    (artifacts / last.artifacts[0]).write_bytes(png(320, 200, (30, 90, 200)))
    OUTPUT.mkdir(exist_ok=True)
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(browser_path), args=BROWSER_ARGS
            )
            try:
                for width in (1400, 400):
                    page = await browser.new_page(viewport={"width": width, "height": 900})
                    await page.goto(server.client.base + "/")
                    login = page.locator("#scenario-login")
                    rows = login.locator("table.availability tr[data-window]")
                    cells = [await row.inner_text() for row in await rows.all()]
                    # 24h: 97 good of 98 valid (the error run is not valid): 98.98% < 99%.
                    assert cells[0].split() == ["24h", "98.98%", "97/98", "1"]
                    # 7d: 197 good of 199 valid; 30d is longer than successes are kept.
                    assert cells[1].split() == ["7d", "98.99%", "197/199", "1"]
                    assert cells[2].split()[:2] == ["30d", "—"]
                    assert await rows.nth(0).locator(".bad").count() == 1
                    # Budget over 7d: 1 - (2/199) / 1% = -0.5%: overspent, in red.
                    budget = login.locator(".budget")
                    assert "-0.5%" in await budget.inner_text()
                    assert await budget.locator(".bad").count() == 1
                    # The waterfall of the last run: three segments, the last one failed.
                    segments = login.locator(".waterfall span")
                    assert await segments.count() == 3
                    assert await login.locator(".waterfall span.failed").count() == 1
                    widths = [
                        (await s.bounding_box() or {"width": 0.0})["width"]
                        for s in await segments.all()
                    ]
                    assert widths[2] > widths[1] > widths[0] > 0  # 1.5s > 0.9s > 0.4s
                    split = await login.locator(".components").inner_text()
                    assert "app 0.40s (14%)" in split and "idp 2.40s (86%)" in split
                    # Nothing sticks out sideways, even at phone width.
                    assert await page.evaluate(
                        "document.documentElement.scrollWidth <= window.innerWidth"
                    )
                    await page.screenshot(path=OUTPUT / f"status-{width}.png", full_page=True)

                    await login.locator("a", has_text="last run").click()
                    await page.wait_for_load_state()
                    assert page.url.endswith("/runs/20261201T120000Z-%3Cb%3Ex%3Ci%3E")
                    text = await page.inner_text("body")
                    assert "4bf92f3577b34da6a3ce929d0e0e4736" in text
                    assert "waiting for <button>" in text and PASSWORD not in await page.content()
                    assert await page.locator("b").count() == 0  # the run id is text
                    assert await page.locator("tr.step-row").count() == 3
                    assert await page.locator("tr.step-row.failed").inner_text() == (
                        "credentials_accepted failed\tidp\t1.500\t54%"
                    )
                    shot = page.locator("img.full")
                    assert await shot.evaluate("img => img.naturalWidth") == 320
                    assert await page.evaluate(
                        "document.documentElement.scrollWidth <= window.innerWidth"
                    )
                    await page.screenshot(path=OUTPUT / f"run-{width}.png", full_page=True)
                    await page.close()

                page = await browser.new_page()
                missing = await page.goto(server.client.base + "/runs/%3Cscript%3E")
                assert missing is not None and missing.status == 404
                assert "<script>" in await page.inner_text("body")
                assert missing.headers["content-security-policy"].startswith("default-src 'none'")
            finally:
                await browser.close()
    finally:
        processes.reap_orphans(exclude=set())
