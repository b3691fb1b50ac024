"""Declarative actions: the YAML vocabulary of a step, as data.

How each action drives a page is the worker's business (prober.worker.actions).

A YAML action is a one-key mapping (`- click: "text=Sign in"`); `normalize_action`
turns it into the tagged form the models validate, so an unknown or misspelt action
gets one clear message instead of a wall of union errors.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from prober.contracts.syntax import Selector, Url
from prober.contracts.totp import Algorithm, normalize_seed, seed_problem

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


class FillTotp(_Action):
    """Fill the current RFC 6238 code of a base32 seed (a second factor).

    If the current code has less than `margin` left, the step waits for the next window
    rather than submit a code that expires in flight: that wait is part of the step.
    The seed and each code are secrets.
    """

    action: Literal["fill_totp"]
    selector: str
    secret: str
    digits: int = Field(default=6, ge=6, le=10)
    period: int = Field(default=30, ge=5, le=300)
    algorithm: Algorithm = "SHA1"
    # Seconds, like `period` (the otpauth:// convention), not a duration string.
    margin: float = Field(default=3.0, ge=0)

    @field_validator("secret")
    @classmethod
    def _base32(cls, value: str) -> str:
        problem = seed_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _margin_fits(self) -> "FillTotp":
        if self.margin * 2 > self.period:
            raise ValueError(
                f"margin ({self.margin:g}s) must be at most half the period ({self.period}s)"
            )
        return self

    def secrets(self) -> tuple[str, str]:
        """The seed as written and as used: both must be masked."""
        return self.secret, normalize_seed(self.secret)


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
    Goto | Click | Fill | FillTotp | Press | WaitFor | WaitForUrl | ExpectText,
    Field(discriminator="action"),
]
ACTION_NAMES = (
    "click",
    "expect_text",
    "fill",
    "fill_totp",
    "goto",
    "press",
    "wait_for",
    "wait_for_url",
)


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
        "fill_totp": '{selector: ..., secret: "${MFA_SEED}"}',
        "press": "{selector: ..., key: Enter}",
        "expect_text": "{selector: ..., text: ...}",
    }
    return f"`{name}: {fields[name]}`"
