"""Declarative actions: the YAML vocabulary of a step, and how each one drives a page.

A YAML action is a one-key mapping (`- click: "text=Sign in"`); `normalize_action`
turns it into the tagged form the models validate, so an unknown or misspelt action
gets one clear message instead of a wall of union errors.
"""

from typing import Annotated, Any, Literal

from playwright.async_api import Page, expect
from pydantic import BaseModel, ConfigDict, Field

from prober.syntax import Selector, Url

# Actions whose YAML shorthand is a bare string, and the field that string fills.
_SHORTHAND = {
    "goto": "url",
    "click": "selector",
    "wait_for": "selector",
    "wait_for_url": "url",
}


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Goto(_Action):
    """Navigate; an HTTP error status (>= 400) fails the step like a user seeing an error page."""

    action: Literal["goto"]
    url: Url


class Click(_Action):
    action: Literal["click"]
    selector: Selector


class Fill(_Action):
    action: Literal["fill"]
    selector: Selector
    value: str


class Press(_Action):
    action: Literal["press"]
    selector: Selector
    key: str


class WaitFor(_Action):
    action: Literal["wait_for"]
    selector: Selector
    state: Literal["attached", "detached", "visible", "hidden"] = "visible"


class WaitForUrl(_Action):
    action: Literal["wait_for_url"]
    url: str


class ExpectText(_Action):
    """Wait for the element, then require its text to contain `text` (an assertion failure)."""

    action: Literal["expect_text"]
    selector: Selector
    text: str


Action = Annotated[
    Goto | Click | Fill | Press | WaitFor | WaitForUrl | ExpectText,
    Field(discriminator="action"),
]
ACTION_NAMES = ("click", "expect_text", "fill", "goto", "press", "wait_for", "wait_for_url")

# expect_text polls this long for the text once the element is there: long enough for
# a page still rendering, short enough that a wrong page fails as an assertion rather
# than burning the whole run budget into a timeout.
EXPECT_TEXT_SECONDS = 5.0


class HttpStatusError(Exception):
    """A navigation answered with an HTTP error status."""


def normalize_action(raw: Any) -> Any:
    """Turn `{"click": "sel"}` into `{"action": "click", "selector": "sel"}`; explain misuse."""
    if isinstance(raw, dict) and "action" in raw:  # already tagged (a spec sent to a worker)
        return raw
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ValueError(
            'an action is a mapping with exactly one key, e.g. `- click: "text=Sign in"`'
        )
    ((name, argument),) = raw.items()
    if name not in ACTION_NAMES:
        raise ValueError(f"unknown action '{name}'; known actions: {', '.join(ACTION_NAMES)}")
    if isinstance(argument, dict):
        return {"action": name, **argument}
    if name in _SHORTHAND and isinstance(argument, str):
        return {"action": name, _SHORTHAND[name]: argument}
    if name in _SHORTHAND:
        raise ValueError(f"action '{name}' takes a string or a mapping")
    raise ValueError(f"action '{name}' takes a mapping, e.g. {_example(name)}")


def _example(name: str) -> str:
    fields = {
        "fill": "{selector: ..., value: ...}",
        "press": "{selector: ..., key: Enter}",
        "expect_text": "{selector: ..., text: ...}",
    }
    return f"`{name}: {fields[name]}`"


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
