"""How each declarative action (prober.contracts.actions) drives a Playwright page."""

from playwright.async_api import Page, expect

from prober.contracts.actions import (
    Action,
    Click,
    ExpectText,
    Fill,
    FillTotp,
    Goto,
    Press,
    WaitFor,
    WaitForUrl,
)
from prober.scenario.totp import fill_totp

# expect_text polls this long for the text once the element is there: long enough for
# a page still rendering, short enough that a wrong page fails as an assertion rather
# than burning the whole run budget into a timeout.
EXPECT_TEXT_SECONDS = 5.0


class HttpStatusError(Exception):
    """A navigation answered with an HTTP error status."""


async def perform(page: Page, action: Action) -> None:
    """Drive the page for one action. Waits are bounded by the run's deadline, not here."""
    match action:
        case Goto(url=url):
            response = await page.goto(url)
            if response is not None and response.status >= 400:
                raise HttpStatusError(f"{url} answered HTTP {response.status}")
        case Click(selector=selector):
            await page.locator(selector).click()
        case Fill(selector=selector, value=value):
            await page.locator(selector).fill(value)
        case FillTotp():
            await fill_totp(
                page,
                action.selector,
                action.secret,
                digits=action.digits,
                period=action.period,
                algorithm=action.algorithm,
                margin=action.margin,
            )
        case Press(selector=selector, key=key):
            await page.locator(selector).press(key)
        case WaitFor(selector=selector, state=state):
            await page.locator(selector).first.wait_for(state=state)
        case WaitForUrl(url=url):
            await page.wait_for_url(url)
        case ExpectText(selector=selector, text=text):
            locator = page.locator(selector)
            await locator.first.wait_for(state="attached")
            await expect(locator).to_contain_text(text, timeout=EXPECT_TEXT_SECONDS * 1000)
