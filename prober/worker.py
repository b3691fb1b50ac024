"""The subprocess that performs one run: `python -m prober.worker`, spec on stdin.

One process per run keeps runs isolated: a leaked page, a wedged driver or a scenario
that blocks the event loop dies with its process, and the parent can always kill it.
Events go to a private copy of stdout; fd 1 itself is pointed at stderr so that a stray
`print()` in a scenario script cannot corrupt the event stream.
"""

import asyncio
import contextlib
import importlib
import os
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

from playwright.async_api import Browser, Page, async_playwright

from prober.config import Step
from prober.failures import classify, describe
from prober.protocol import EventName, WorkerSpec, encode_event
from prober.result import Outcome
from prober.scenario.actions import perform
from prober.scenario.api import ScriptFunction, StepTimer
from prober.secrets import Redactor

# How long closing the browser may take after the result is out; the parent kills the
# process tree if it takes longer, so this only keeps a clean exit the common case.
CLOSE_SECONDS = 5.0


class EventStream:
    """Writes redacted NDJSON events and remembers which step failed."""

    def __init__(self, fd: int, redact: Redactor) -> None:
        self._fd = fd
        self._redact = redact
        self.failed_step: str | None = None

    def emit(self, event: EventName, **fields: Any) -> None:
        line = encode_event(event, **fields).decode()
        os.write(self._fd, self._redact(line).encode())

    def step_started(self, name: str) -> None:
        self.emit("step_started", step=name)

    def step_finished(self, name: str, duration: float, error: BaseException | None) -> None:
        if error is None:
            self.emit("step_finished", step=name, duration_seconds=duration, ok=True)
            return
        self.failed_step = name
        _, reason = classify(error)
        self.emit(
            "step_finished",
            step=name,
            duration_seconds=duration,
            ok=False,
            reason=reason.value,
            error=describe(error),
        )

    def run_finished(
        self,
        result: Outcome,
        duration: float | None,
        error: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.emit(
            "run_finished",
            ok=result is Outcome.SUCCESS,
            result=result.value,
            duration_seconds=duration,
            failed_step=self.failed_step,
            reason=reason,
            error=error,
        )


def load_body(spec: WorkerSpec) -> ScriptFunction:
    """The coroutine function that runs the scenario's steps against a page."""
    if spec.steps is not None:
        steps = spec.steps

        async def declarative(page: Page, step: StepTimer, params: dict[str, Any]) -> None:
            await run_steps(page, step, steps)

        return declarative
    assert spec.script is not None
    module_name, _, function_name = spec.script.partition(":")
    for entry in reversed(spec.python_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    module = importlib.import_module(module_name)
    function = getattr(module, function_name)
    if not callable(function):
        raise TypeError(f"{spec.script} is not callable")
    return function  # type: ignore[no-any-return]


async def run_steps(page: Page, step: StepTimer, steps: list[Step]) -> None:
    for declared in steps:
        async with step(declared.name):
            for action in declared.actions:
                await perform(page, action)


async def execute(spec: WorkerSpec, events: EventStream) -> None:
    """Launch, run, report; every path ends in exactly one `run_finished` event."""
    try:
        body = load_body(spec)
    except Exception as exc:
        events.run_finished(Outcome.ERROR, None, f"cannot load script: {describe(exc)}")
        return
    async with AsyncExitStack() as stack:
        launch_started = time.monotonic()
        try:
            async with asyncio.timeout_at(spec.soft_deadline):
                playwright = await stack.enter_async_context(async_playwright())
                browser = await playwright.chromium.launch(
                    executable_path=spec.browser_path, args=spec.browser_args, headless=True
                )
                stack.push_async_callback(_close, browser)
                context = await browser.new_context()
                page = await context.new_page()
        except TimeoutError:
            events.run_finished(Outcome.ERROR, None, "browser did not start before the deadline")
            return
        except Exception as exc:
            events.run_finished(Outcome.ERROR, None, f"browser launch failed: {describe(exc)}")
            return
        events.emit(
            "browser_launched",
            duration_seconds=time.monotonic() - launch_started,
            browser_version=browser.version,
        )
        # The run's deadline bounds every wait; Playwright's own 30 s default would turn
        # a slow page into a `failure` where the scenario's budget says `timeout`.
        page.set_default_timeout(0)
        page.set_default_navigation_timeout(0)
        await run_body(spec, events, body, page)


async def run_body(spec: WorkerSpec, events: EventStream, body: ScriptFunction, page: Page) -> None:
    timer = StepTimer(events)
    started = time.monotonic()
    deadline = asyncio.timeout_at(spec.soft_deadline)
    try:
        async with deadline:
            await body(page, timer, dict(spec.params))
    except TimeoutError as exc:
        if deadline.expired():
            events.run_finished(
                Outcome.TIMEOUT, time.monotonic() - started, "run deadline reached", "timeout"
            )
        else:
            _report_failure(events, exc, started)
        return
    except Exception as exc:
        _report_failure(events, exc, started)
        return
    events.run_finished(Outcome.SUCCESS, time.monotonic() - started)


def _report_failure(events: EventStream, exc: BaseException, started: float) -> None:
    result, reason = classify(exc)
    events.run_finished(result, time.monotonic() - started, describe(exc), reason.value)


async def _close(browser: Browser) -> None:
    # The parent reaps whatever is left; nothing is worth reporting past the result.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(browser.close(), CLOSE_SECONDS)


def main() -> int:
    events_fd = os.dup(1)
    os.dup2(2, 1)
    spec = WorkerSpec.model_validate_json(sys.stdin.buffer.read())
    events = EventStream(events_fd, Redactor(spec.secrets))
    asyncio.run(execute(spec, events))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
