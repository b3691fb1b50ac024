"""The Python scenario API: `async def run(page, step, params)` with `async with step(...)`.

A scripted scenario times its own steps; the worker passes it a `StepTimer` bound to the
event stream, so scripted and declarative steps produce the same events and metrics.
"""

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

from playwright.async_api import Page

from prober.contracts.result import DEFAULT_COMPONENT
from prober.contracts.steps import COMPONENT_NAME, STEP_NAME

# Step names become metric labels; a script looping over `step(f"item_{i}")` must not
# be able to explode the series count.
MAX_STEPS_PER_RUN = 50


class StepError(Exception):
    """The script misused `step()`: a bad or repeated name, nesting, too many steps."""


class StepListener(Protocol):
    def step_started(self, name: str, component: str) -> None: ...
    def step_finished(
        self, name: str, component: str, duration: float, error: BaseException | None
    ) -> None: ...


class StepTimer:
    """Callable as `step(name)` or `step(name, component="idp")`; times the block with a
    monotonic clock.

    A step without a component belongs to the scenario's own (`component:` of the
    scenario, `app` by default), which the worker passes in as `default_component`.
    """

    def __init__(self, listener: StepListener, default_component: str = DEFAULT_COMPONENT) -> None:
        self._listener = listener
        self._default_component = default_component
        self._seen: set[str] = set()
        self._current: str | None = None

    @asynccontextmanager
    async def __call__(self, name: str, component: str | None = None) -> AsyncIterator[None]:
        self._validate(name)
        if component is not None and (
            not isinstance(component, str) or not re.fullmatch(COMPONENT_NAME, component)
        ):
            raise StepError(f"component {component!r} of step {name!r} must match {COMPONENT_NAME}")
        part = component or self._default_component
        self._seen.add(name)
        self._current = name
        self._listener.step_started(name, part)
        started = time.monotonic()
        try:
            yield
        except BaseException as exc:
            self._listener.step_finished(name, part, time.monotonic() - started, exc)
            raise
        else:
            self._listener.step_finished(name, part, time.monotonic() - started, None)
        finally:
            self._current = None

    def _validate(self, name: str) -> None:
        if self._current is not None:
            raise StepError(
                f"step {name!r} started inside step {self._current!r}; steps do not nest"
            )
        if not isinstance(name, str) or not re.fullmatch(STEP_NAME, name):
            raise StepError(f"step name {name!r} must match {STEP_NAME}")
        if name in self._seen:
            raise StepError(f"step {name!r} ran twice in one run; step names must be unique")
        if len(self._seen) >= MAX_STEPS_PER_RUN:
            raise StepError(f"more than {MAX_STEPS_PER_RUN} steps in one run")


ScriptFunction = Callable[[Page, StepTimer, dict[str, Any]], Awaitable[None]]
