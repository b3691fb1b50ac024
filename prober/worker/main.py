"""The subprocess that performs runs: `python -m prober.worker`, specs on stdin.

Process isolation (one process per run) keeps runs apart completely: a leaked page, a
wedged driver or a scenario that blocks the event loop dies with its process. A slot
worker (context isolation) keeps its driver and browser and runs one spec after another,
each in a fresh BrowserContext (no cookies, storage, cache or permissions carried over);
the parent kills it with its tree at any run's timeout and recycles it (see
prober/supervise/slots.py), so a wedged page still never outlives its run.
The worker reads its launch settings first and starts preparing (driver, browser) while
it waits for the run's spec, so a pool can start it before the run is due.
Events go to a private copy of stdout; fd 1 itself is pointed at stderr so that a stray
`print()` in a scenario script cannot corrupt the event stream.
"""

import asyncio
import contextlib
import ctypes
import importlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from prober.contracts.protocol import (
    BrowserLaunched,
    Event,
    LaunchSpec,
    RunEnded,
    RunFinished,
    SlotReady,
    StepFinished,
    StepStarted,
    WorkerSpec,
    encode,
)
from prober.contracts.result import Outcome, Reason
from prober.contracts.secrets import Redactor
from prober.contracts.steps import Step
from prober.scenario import totp
from prober.scenario.api import ScriptFunction, StepTimer
from prober.worker import propagation
from prober.worker.actions import perform
from prober.worker.capture import Capture
from prober.worker.certificates import CertificateWatch
from prober.worker.failures import classify, describe
from prober.worker.network import RequestLog
from prober.worker.timings import PageTimingProbe
from prober.worker.trust import browser_env, browser_home

# How long closing the browser may take after the result is out; the parent kills the
# process tree if it takes longer, so this only keeps a clean exit the common case.
CLOSE_SECONDS = 5.0
# Kept free before the hard kill for reporting the result after artifacts (at most half
# the margin): on a loaded machine, cancelling a stuck screenshot and writing the console
# file took 0.3 s past their deadline.
REPORT_RESERVE_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1


class EventStream:
    """Writes events (masked by `encode`) and remembers which step failed."""

    def __init__(self, fd: int, redact: Redactor) -> None:
        self._fd = fd
        self.redact = redact
        self.failed_step: str | None = None
        # The step running or, between steps, the one that just ran: it owns new pages.
        self.latest_step: str | None = None
        # The step running, None between steps: the parent span of its requests.
        self.running_step: str | None = None
        # Called as each step and the run end, before their events (request counts).
        self.before_end: Callable[[], None] = lambda: None

    def emit(self, event: Event) -> None:
        os.write(self._fd, encode(event, self.redact))

    def step_started(self, name: str, component: str) -> None:
        self.latest_step = self.running_step = name
        self.emit(StepStarted(step=name, component=component))

    def step_finished(
        self, name: str, component: str, duration: float, error: BaseException | None
    ) -> None:
        self.before_end()
        self.running_step = None
        if error is None:
            self.emit(
                StepFinished(step=name, component=component, duration_seconds=duration, ok=True)
            )
            return
        self.failed_step = name
        _, reason = classify(error)
        self.emit(
            StepFinished(
                step=name,
                component=component,
                duration_seconds=duration,
                ok=False,
                reason=reason,
                error=describe(error),
            )
        )

    def run_finished(
        self,
        result: Outcome,
        duration: float | None,
        error: str | None = None,
        reason: Reason | None = None,
    ) -> None:
        self.before_end()
        self.emit(
            RunFinished(
                result=result,
                duration_seconds=duration,
                failed_step=self.failed_step,
                reason=reason,
                error=error,
            )
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


def forget_modules(before: set[str], python_path: list[str]) -> None:
    """Drop the modules a run imported from the scenario directory, so the next run in
    the same slot imports them afresh: module-level state never carries over.

    Libraries from elsewhere (site-packages) stay imported, and their state with them.
    """
    roots = tuple(os.path.join(os.path.abspath(entry), "") for entry in python_path)
    for name in set(sys.modules) - before:
        origin = getattr(sys.modules[name], "__file__", None) or ""
        if os.path.abspath(origin).startswith(roots):
            del sys.modules[name]


async def run_steps(page: Page, step: StepTimer, steps: list[Step]) -> None:
    for declared in steps:
        async with step(declared.name, declared.component):
            for action in declared.actions:
                await perform(page, action)


class BrowserStarter:
    """Starts the driver, and the browser if the LaunchSpec says so, before the run is due.

    A pre-started worker may wait a whole interval for its run; a browser whose early
    launch failed, or that died in the meantime, is launched again when the run is due
    rather than failing a run the target had no part in.
    """

    def __init__(self, launch: LaunchSpec) -> None:
        self._launch = launch
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._env: dict[str, str | float | bool] | None = None
        # The browser disconnected (crashed, killed) since the flag was last taken.
        self.crashed = False
        self._closing = False
        self._started = asyncio.create_task(self._start())

    async def _start(self) -> None:
        self._playwright = await async_playwright().start()
        if self._launch.launch_browser:
            await self._launch_browser()

    async def _launch_browser(self) -> Browser:
        assert self._playwright is not None
        if self._launch.ca_file and self._env is None:
            home = await asyncio.to_thread(browser_home, Path(self._launch.ca_file))
            self._env = browser_env(home)
        self._browser = await self._playwright.chromium.launch(
            executable_path=self._launch.browser_path,
            args=self._launch.browser_args,
            headless=True,
            env=self._env,
        )
        self._browser.on("disconnected", self._disconnected)
        return self._browser

    def _disconnected(self, browser: Browser) -> None:
        if not self._closing:
            self.crashed = True

    @property
    def current(self) -> Browser | None:
        return self._browser

    def take_crashed(self) -> bool:
        """Whether the browser crashed since the last call (a slot is then recycled)."""
        crashed, self.crashed = self.crashed, False
        return crashed

    async def browser(self) -> Browser:
        """The browser launched early if it is still up, else one launched now (once)."""
        try:
            await self._started
        except Exception:
            if self._playwright is None:
                raise
        if self._browser is not None and self._browser.is_connected():
            return self._browser
        return await self._launch_browser()

    async def close(self) -> None:
        # The parent reaps whatever is left; nothing is worth reporting past the result.
        self._closing = True
        self._started.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._started
        with contextlib.suppress(Exception):
            if self._browser is not None:
                await asyncio.wait_for(self._browser.close(), CLOSE_SECONDS)
            if self._playwright is not None:
                await asyncio.wait_for(self._playwright.stop(), CLOSE_SECONDS)


async def execute(spec: WorkerSpec, events: EventStream, starter: BrowserStarter) -> None:
    """Get the browser, run, report; every path ends in exactly one `run_finished` event."""
    try:
        body = load_body(spec)
    except Exception as exc:
        events.run_finished(Outcome.ERROR, None, f"cannot load script: {describe(exc)}")
        return
    capture = (
        Capture(Path(spec.artifacts_dir), spec.run_id, events.redact, events.emit)
        if spec.artifacts_dir
        else None
    )
    if capture:
        capture.prepare()
    # Every document is loaded from now on, so none of its phases can outlast this.
    timings = PageTimingProbe(
        lambda: events.latest_step,
        events.emit,
        (spec.hard_deadline or spec.soft_deadline) - time.monotonic(),
    )
    requests = RequestLog(lambda: events.latest_step, events.emit)
    events.before_end = requests.flush
    certificates = CertificateWatch(events.redact, events.emit)
    launch_started = time.monotonic()
    try:
        async with asyncio.timeout_at(spec.soft_deadline):
            browser = await starter.browser()
            har = capture.har_path() if capture else None

            async def new_context(browser: Browser) -> BrowserContext:
                if har:
                    return await browser.new_context(record_har_path=har, record_har_content="omit")
                return await browser.new_context()

            try:
                context = await new_context(browser)
            except PlaywrightError:
                # A slot's browser that crashed between runs, not yet seen as gone.
                if browser.is_connected():
                    raise
                browser = await starter.browser()
                context = await new_context(browser)
            requests.install(context)
            certificates.install(context)
            page = await context.new_page()
            await timings.install(context, page)
            await propagation.install(context, spec.propagation, lambda: events.running_step)
            if capture:
                await capture.start(context, page)
    except TimeoutError:
        events.run_finished(Outcome.ERROR, None, "browser did not start before the deadline")
        return
    except Exception as exc:
        events.run_finished(Outcome.ERROR, None, f"browser launch failed: {describe(exc)}")
        return
    events.emit(
        BrowserLaunched(
            duration_seconds=time.monotonic() - launch_started,
            browser_version=browser.version,
        )
    )
    # The run's deadline bounds every wait; Playwright's own 30 s default would turn
    # a slow page into a `failure` where the scenario's budget says `timeout`.
    page.set_default_timeout(0)
    page.set_default_navigation_timeout(0)
    result, duration, error, reason = await run_body(spec, events, body, page)
    # Before the artifacts: keeping the HAR closes the context these reads need.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(_report_deadline(spec)):
            await certificates.settle()
    await after_body(spec, result, context, page, timings, capture)
    events.run_finished(result, duration, error, reason)


async def run_body(
    spec: WorkerSpec, events: EventStream, body: ScriptFunction, page: Page
) -> tuple[Outcome, float, str | None, Reason | None]:
    """(result, duration, error, reason); the duration covers the steps and nothing after."""
    timer = StepTimer(events, spec.component)
    started = time.monotonic()
    deadline = asyncio.timeout_at(spec.soft_deadline)
    try:
        async with deadline:
            await body(page, timer, dict(spec.params))
    except TimeoutError as exc:
        if deadline.expired():
            return (
                Outcome.TIMEOUT,
                time.monotonic() - started,
                "run deadline reached",
                Reason.TIMEOUT,
            )
        return _failure(exc, started)
    except Exception as exc:
        return _failure(exc, started)
    return Outcome.SUCCESS, time.monotonic() - started, None, None


def _failure(exc: BaseException, started: float) -> tuple[Outcome, float, str, Reason]:
    result, reason = classify(exc)
    return result, time.monotonic() - started, describe(exc), reason


async def after_body(
    spec: WorkerSpec,
    result: Outcome,
    context: BrowserContext,
    page: Page,
    timings: PageTimingProbe,
    capture: Capture | None,
) -> None:
    """Page timings of the last page, then artifacts; all before the hard kill.

    A timed-out run is already past its soft deadline: it only gets the screenshot and
    trace, inside the margin before the parent's kill.
    """
    deadline = _report_deadline(spec)
    failed = result is not Outcome.SUCCESS
    if capture and failed:
        await capture.failed(page, deadline)
    if result is not Outcome.TIMEOUT:
        with contextlib.suppress(TimeoutError, PlaywrightError):
            async with asyncio.timeout_at(deadline):
                await timings.read_last(page)
    if capture and (failed or spec.trace_on_success):
        await capture.keep_trace(context, deadline)
    if capture and failed:
        await capture.keep_har(context, deadline)


def _report_deadline(spec: WorkerSpec) -> float:
    """Until when the worker may still gather figures and artifacts after the steps."""
    if spec.hard_deadline is None:
        return spec.soft_deadline
    margin = spec.hard_deadline - spec.soft_deadline
    return spec.hard_deadline - min(REPORT_RESERVE_SECONDS, margin / 2)


async def serve_slot(launch: LaunchSpec, events_fd: int) -> None:
    """Run one spec per stdin line in a fresh context of one browser, until EOF.

    After each run: every context is closed (cookies, storage, cache, permissions and
    pages go with it), modules imported from the scenario directory are forgotten, the
    spec (with its expanded credentials) is dropped, and `run_ended` is sent.
    """
    starter = BrowserStarter(launch)
    # Compiling the masking patterns costs ~40 ms of CPU per secret; the secret set is
    # the same for every run of one config, so its redactor is reused while unchanged.
    redactors: dict[tuple[str, ...], Redactor] = {}
    try:
        try:
            ready = SlotReady(browser_version=(await starter.browser()).version)
        except Exception as exc:
            ready = SlotReady(error=describe(exc))
        os.write(events_fd, encode(ready))
        while line := await asyncio.to_thread(sys.stdin.buffer.readline):
            spec = WorkerSpec.model_validate_json(line)
            key = tuple(spec.secrets)
            redact = redactors.pop(key, None) or Redactor(spec.secrets)
            totp.mask_with(redact.add)
            before = set(sys.modules)
            try:
                await execute(spec, EventStream(events_fd, redact), starter)
                await close_contexts(starter)
            finally:
                forget_modules(before, spec.python_path)
                totp.mask_with(lambda codes: None)
            # A redactor that TOTP codes were added to is not the config's any more.
            if redact.secrets == tuple(sorted(set(filter(None, key)))):
                redactors = {key: redact}
            del spec, redact
            os.write(events_fd, encode(RunEnded(browser_crashed=starter.take_crashed())))
    finally:
        await starter.close()


async def close_contexts(starter: BrowserStarter) -> None:
    """Close every context of the browser, the run's own and any a script opened."""
    browser = starter.current
    if browser is None or not browser.is_connected():
        return
    for context in browser.contexts:
        with contextlib.suppress(PlaywrightError):
            await asyncio.wait_for(context.close(), CLOSE_SECONDS)


async def serve_one(launch: LaunchSpec, events_fd: int) -> None:
    """Prepare while waiting for the run's spec, then perform that one run and exit.

    EOF instead of a spec means the parent no longer needs this worker.
    """
    starter = BrowserStarter(launch)
    try:
        raw = await asyncio.to_thread(sys.stdin.buffer.read)
        if not raw.strip():
            return
        spec = WorkerSpec.model_validate_json(raw)
        redact = Redactor(spec.secrets)
        # TOTP codes are born in this process: they join the redactor events, console
        # and trace scrubbing share, before any reaches the page.
        totp.mask_with(redact.add)
        await execute(spec, EventStream(events_fd, redact), starter)
    finally:
        await starter.close()


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (a worker's safety net).

    If the prober itself is killed (OOM, SIGKILL) nobody is left to enforce timeouts; the
    worker's driver then sees its pipe close and takes the browser down with it.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before the call above took effect
        os._exit(1)


def main() -> int:
    die_with_parent()
    events_fd = os.dup(1)
    os.dup2(2, 1)
    launch = LaunchSpec.model_validate_json(sys.stdin.buffer.readline())
    asyncio.run((serve_slot if launch.slot else serve_one)(launch, events_fd))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
