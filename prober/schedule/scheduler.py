"""One loop per scenario: run, wait `interval` after the run *ended*, run again.

- Never two runs of one scenario at once: a per-scenario lock covers scheduled and
  on-demand runs alike.
- A global semaphore caps concurrent browsers; a run waits for a slot, and the wait does
  not count towards its duration.
- Start times are spread by a random offset so a restart does not launch all at once.
- Nothing a run does (fail, hang, crash, raise) can stop its loop or another scenario's.
- A failed run may be retried (`retries`, policy in prober/schedule/retries.py); every attempt is
  a run of its own for the observer, inside the same lock and browser slot.
- `stop()` stops scheduling, lets in-flight runs finish within a grace period, then
  cancels them (the runner kills their process trees on cancellation).
"""

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Protocol

from prober.contracts.config import Scenario
from prober.contracts.result import Outcome, RunResult, new_run_id
from prober.schedule.retries import should_retry

log = logging.getLogger(__name__)

RunFunction = Callable[[Scenario, str], Awaitable[RunResult]]
HEARTBEAT_SECONDS = 1.0


class RunObserver(Protocol):
    """Told about every run: metrics, logs, history."""

    def run_started(self, scenario: Scenario, run_id: str) -> None: ...

    def run_finished(self, scenario: Scenario, run_id: str, result: RunResult | None) -> None:
        """`result` is None for a run cancelled at shutdown: no verdict on the target."""


class ScenarioBusyError(Exception):
    """An on-demand run was asked for while the scenario is already running."""


class Scheduler:
    def __init__(
        self,
        run: RunFunction,
        observer: RunObserver,
        max_concurrency: int,
        max_start_offset: float,
        rng: random.Random | None = None,
    ) -> None:
        self._run = run
        self._observer = observer
        self._slots = asyncio.Semaphore(max_concurrency)
        self._max_start_offset = max_start_offset
        self._rng = rng or random.Random()
        self._scenarios: dict[str, Scenario] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._in_flight: set[asyncio.Task[RunResult | None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._stopping = False
        self.last_beat = time.monotonic()

    @property
    def scenarios(self) -> dict[str, Scenario]:
        return dict(self._scenarios)

    def start(self, scenarios: Iterable[Scenario]) -> None:
        self._heartbeat = asyncio.create_task(self._beat(), name="scheduler-heartbeat")
        for scenario in scenarios:
            self.add(scenario)

    def add(self, scenario: Scenario) -> None:
        """Start a scenario's loop, or restart it with a changed definition (live reload).

        A run of the old definition still in flight finishes first: both share the lock.
        """
        old = self._loops.pop(scenario.name, None)
        if old is not None:
            old.cancel()
        self._scenarios[scenario.name] = scenario
        self._locks.setdefault(scenario.name, asyncio.Lock())
        self._loops[scenario.name] = asyncio.create_task(
            self._loop(scenario), name=f"scenario:{scenario.name}"
        )

    async def remove(self, name: str) -> None:
        """Stop scheduling a scenario; return when its in-flight run (if any) has ended.

        The run is not cancelled: it finishes or the runner kills it at its timeout, and
        its result is recorded like any other.
        """
        # Tolerant of a second remove (remove, re-add, remove while a run holds the lock).
        self._scenarios.pop(name, None)
        loop = self._loops.pop(name, None)
        if loop is not None:
            loop.cancel()
        lock = self._locks.get(name)
        if lock is not None:
            async with lock:
                pass
        if name not in self._scenarios:
            self._locks.pop(name, None)

    def healthy(self, max_silence: float = 10.0) -> bool:
        """The event loop is responsive and no scenario loop has died."""
        if self._heartbeat is None or self._heartbeat.done():
            return False
        if any(task.done() for task in self._loops.values()) and not self._stopping:
            return False
        return time.monotonic() - self.last_beat < max_silence

    def is_running(self, name: str) -> bool:
        lock = self._locks.get(name)  # gone if a reload removed the scenario meanwhile
        return lock is not None and lock.locked()

    async def run_now(self, name: str, run_id: str | None = None) -> RunResult | None:
        """An extra run outside the schedule; ScenarioBusyError if one is in flight.

        `run_id` lets a caller (the HTTP API) hand out the id before the run starts.
        """
        scenario = self._scenarios.get(name)
        if scenario is None:  # removed by a reload after the caller looked it up
            return None
        if self.is_running(name):
            raise ScenarioBusyError(name)
        return await self._run_once(scenario, run_id)

    async def stop(self, grace: float) -> None:
        """Stop scheduling now; give in-flight runs `grace` seconds, then cancel them."""
        self._stopping = True
        for loop in self._loops.values():
            loop.cancel()
        runs = [task for task in self._in_flight if not task.done()]
        if runs:
            _, late = await asyncio.wait(runs, timeout=grace)
            if late:
                log.warning("grace period over; cancelling runs", extra={"runs": len(late)})
            for task in late:
                task.cancel()
            await asyncio.gather(*runs, return_exceptions=True)
        await asyncio.gather(*self._loops.values(), return_exceptions=True)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)

    def cancel_runs(self) -> None:
        """Cancel in-flight runs now (a second SIGTERM); their process trees are killed."""
        for task in self._in_flight:
            task.cancel()

    async def _loop(self, scenario: Scenario) -> None:
        await asyncio.sleep(self._rng.uniform(0, min(scenario.interval, self._max_start_offset)))
        while not self._stopping:
            await self._run_once(scenario)
            await asyncio.sleep(scenario.interval)

    async def _run_once(self, scenario: Scenario, run_id: str | None = None) -> RunResult | None:
        task = asyncio.create_task(self._locked_run(scenario, run_id), name=f"run:{scenario.name}")
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        # Shielded: cancelling the caller (a stopping loop, an HTTP client that went away)
        # must not cancel the run; stop() decides when a run is cancelled.
        return await asyncio.shield(task)

    async def _locked_run(self, scenario: Scenario, run_id: str | None) -> RunResult | None:
        """The run and its retries, all under the scenario's lock and one browser slot."""
        async with self._locks[scenario.name], self._slots:
            # Queued behind the lock or a slot while stopping, or while a reload removed
            # or changed the scenario: that run never starts.
            if self._stopping or self._scenarios.get(scenario.name) is not scenario:
                return None
            first_started = time.monotonic()
            attempt = 1
            while not self._stopping and self._scenarios.get(scenario.name) is scenario:
                result = await self._attempt(scenario, run_id or new_run_id(), attempt)
                if not should_retry(scenario, result, time.monotonic() - first_started):
                    return result
                attempt, run_id = attempt + 1, None
            return None

    async def _attempt(self, scenario: Scenario, run_id: str, attempt: int) -> RunResult:
        self._notify(self._observer.run_started, scenario, run_id)
        try:
            result = replace(await self._run(scenario, run_id), attempt=attempt)
        except asyncio.CancelledError:
            log.warning(
                "run cancelled at shutdown",
                extra={"scenario": scenario.name, "run_id": run_id},
            )
            self._notify(self._observer.run_finished, scenario, run_id, None)
            raise
        except Exception as exc:  # a runner bug must not end the loop; report it as ours
            log.exception("runner failed", extra={"scenario": scenario.name, "run_id": run_id})
            result = RunResult(
                scenario=scenario.name,
                run_id=run_id,
                result=Outcome.ERROR,
                duration_seconds=0.0,
                started_at=time.time(),
                error=f"internal error: {type(exc).__name__}",
                attempt=attempt,
            )
        self._notify(self._observer.run_finished, scenario, run_id, result)
        return result

    def _notify(self, method: Callable[..., None], *args: object) -> None:
        try:
            method(*args)
        except Exception:
            log.exception("run observer failed")

    async def _beat(self) -> None:
        while True:
            self.last_beat = time.monotonic()
            await asyncio.sleep(HEARTBEAT_SECONDS)
