"""The bare script's sign-in: only Playwright and the standard library, nothing of prober.

Kept apart from bench.common (which imports aiohttp and prober's contracts) so that the
one-shot baseline (bench.bare_oneshot) pays for exactly what a bare script imports.
"""

import time
from pathlib import Path
from typing import Any

from playwright.async_api import Playwright

USER = "probe-user"
PASSWORD = "demo-password"


async def sign_in(
    playwright: Playwright,
    url: str,
    executable: str,
    args: list[str],
    har: Path | None = None,
) -> dict[str, Any]:
    """One sign-in the way a bare script does it: fresh browser, same flags, same calls.

    The driver is started by the caller, so the figure is launch + flow + close, the
    least a run can cost. With `har`, the context records a HAR there as a prober worker
    does (bodies omitted), written when the context closes.
    """
    started = time.monotonic()
    browser = await playwright.chromium.launch(executable_path=executable, args=args, headless=True)
    launched = time.monotonic()
    context = await (
        browser.new_context(record_har_path=har, record_har_content="omit")
        if har
        else browser.new_context()
    )
    page = await context.new_page()
    steps: dict[str, float] = {}

    t = time.monotonic()
    await page.goto(f"{url}/")
    await page.locator("text=Sign in with IdP").first.wait_for(state="visible")
    steps["app_page_loaded"] = time.monotonic() - t
    t = time.monotonic()
    await page.locator("text=Sign in with IdP").click()
    await page.locator("input[name=login]").first.wait_for(state="visible")
    steps["idp_page_loaded"] = time.monotonic() - t
    t = time.monotonic()
    await page.locator("input[name=login]").fill(USER)
    await page.locator("input[name=password]").fill(PASSWORD)
    await page.locator("button[type=submit]").click()
    steps["credentials_accepted"] = time.monotonic() - t
    t = time.monotonic()
    await page.wait_for_url("**/projects")
    h2 = page.locator("h2")
    await h2.first.wait_for(state="attached")
    if "Choose a project" not in await h2.inner_text():
        raise AssertionError("baseline did not land on the projects page")
    steps["back_in_app"] = time.monotonic() - t

    if har:
        await context.close()  # writes the HAR
    await browser.close()
    ended = time.monotonic()
    return {"total": ended - started, "launch": launched - started, "steps": steps}
