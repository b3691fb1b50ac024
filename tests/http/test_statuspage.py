"""The status page, looked at the way a person would: in real headless Chromium."""

import struct
import time
import zlib
from pathlib import Path

from playwright.async_api import async_playwright

from prober.contracts.result import FailedRequest, Outcome, Reason, RunResult, StepResult
from prober.supervise import processes
from tests.conftest import PASSWORD
from tests.http.test_api import ServerFactory, serve_api  # noqa: F401  (fixture)

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
