"""The demo sign-in written as a Python scenario, to show the `script:` form."""

from typing import Any

from playwright.async_api import Page

from prober.scenario.api import StepTimer


async def sign_in(page: Page, step: StepTimer, params: dict[str, Any]) -> None:
    async with step("app_page_loaded"):
        await page.goto(f"{params['url']}/")
        await page.get_by_role("link", name="Sign in with IdP").wait_for()
    async with step("idp_page_loaded"):
        await page.get_by_role("link", name="Sign in with IdP").click()
        await page.locator("input[name=login]").wait_for()
    async with step("credentials_accepted"):
        await page.locator("input[name=login]").fill(params["user"])
        await page.locator("input[name=password]").fill(params["password"])
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url("**/projects")
    async with step("back_in_app"):
        await page.get_by_text("Choose a project").wait_for()
