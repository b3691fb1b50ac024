"""Parent side of a run: a worker process, its events folded into a result, clean-up.

The work is split three ways: prober.supervise.processes starts, streams, kills and
reaps worker processes; prober.supervise.tracker says what a run's events came to;
this module ties the two together for one run and owns what outlives a run (the
pool of pre-started workers or the slots of context isolation, the artifact store).
Whatever the worker does (finish, fail, hang, crash, flood its stdout, print garbage),
`WorkerRunner.run` returns exactly one RunResult and leaves no process behind.
"""

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from typing import Literal

from prober.contracts.config import Scenario
from prober.contracts.protocol import LaunchSpec, SlotReady, WorkerSpec, decode
from prober.contracts.result import Outcome, RunResult, new_run_id
from prober.contracts.secrets import Redactor
from prober.contracts.tracecontext import Propagation, new_trace_id, targets
from prober.supervise.artifacts import ArtifactStore
from prober.supervise.pool import Prewarm, WarmPool
from prober.supervise.processes import Reading, Worker, WorkerProcesses, stopped_in_run
from prober.supervise.slots import RecycleReason, Slot, SlotLimits, SlotPool
from prober.supervise.tracker import RunTracker

WORKER_COMMAND = (sys.executable, "-m", "prober.worker")
# How long a slot may take to start Python, the driver and the browser.
SLOT_START_SECONDS = 60.0
# `process`: a worker process per run; `context`: long-lived slots, a context per run.
Isolation = Literal["process", "context"]


def soft_margin(timeout: float) -> float:
    """How long before the hard kill the worker stops by itself to report and clean up."""
    return min(2.0, 0.15 * timeout)


class WorkerRunner:
    """Runs scenarios in worker subprocesses. One instance serves all runs of a process."""

    def __init__(
        self,
        browser_path: str,
        browser_args: Sequence[str],
        redact: Redactor,
        python_path: Sequence[str] = (),
        command: Sequence[str] = WORKER_COMMAND,
        exit_wait: float = 5.0,
        artifacts: ArtifactStore | None = None,
        trace_on_success: bool = False,
        prewarm: Prewarm = "none",
        pool_size: int = 1,
        ca_file: str | None = None,
        isolation: Isolation = "process",
        slot_limits: SlotLimits | None = None,
        on_slot_recycled: Callable[[RecycleReason], None] | None = None,
    ) -> None:
        self.browser_path = browser_path
        self.browser_args = list(browser_args)
        self.redact = redact
        self.python_path = list(python_path)
        self.artifacts = artifacts
        self.trace_on_success = trace_on_success
        self.ca_file = ca_file
        self.processes = WorkerProcesses(command, exit_wait)
        self.slots = (
            SlotPool(
                self._start_slot,
                self.processes.retire,
                pool_size,
                slot_limits or SlotLimits(),
                prestart=prewarm != "none",
                on_recycle=on_slot_recycled,
            )
            if isolation == "context"
            else None
        )
        self.pool = (
            None
            if prewarm == "none" or self.slots is not None
            else WarmPool(
                lambda: self._start(f"warm-{new_run_id()}", prewarm == "browser"),
                self.processes.retire,
                pool_size,
            )
        )

    @property
    def live_pids(self) -> set[int]:
        """Workers asyncio waits for: an orphan reaper must leave their exit status alone."""
        return self.processes.live_pids

    def start(self) -> None:
        """Start pre-starting workers (if `prewarm` asks for it); needs a running loop."""
        if self.pool is not None:
            self.pool.start()
        if self.slots is not None:
            self.slots.start()

    async def close(self) -> None:
        """Kill pre-started workers that will not be needed (prober shutdown)."""
        if self.pool is not None:
            await self.pool.close()
        if self.slots is not None:
            await self.slots.close()

    async def run(self, scenario: Scenario, run_id: str | None = None) -> RunResult:
        run_id = run_id or new_run_id()
        if self.slots is not None:
            return await self._run_in_slot(self.slots, scenario, run_id)
        tracker, hard_deadline = self._tracker(scenario, run_id)
        worker = await self.pool.take() if self.pool is not None else None
        if worker is None:
            try:
                worker = await self._start(run_id, launch_browser=True)
            except OSError as exc:
                return tracker.not_started(f"cannot start worker: {exc}", time.monotonic())
        assert tracker.trace_id is not None  # _tracker mints it
        spec = self._spec(scenario, run_id, tracker.trace_id, hard_deadline)
        try:
            ending = await self.processes.stream(
                worker,
                spec.model_dump_json().encode(),
                lambda line: tracker.line(line, time.monotonic()),
                hard_deadline,
            )
            if tracker.timed_out(ending):  # before the kill: is it our browser that hung?
                tracker.stopped_processes = await asyncio.to_thread(
                    stopped_in_run, worker.process.pid, worker.tag
                )
        finally:
            # Shielded as one unit: a second cancellation (grace over, then a second
            # SIGTERM) must not skip removing the unscrubbed staging files.
            await asyncio.shield(self._clean_up(worker, tracker))
        return tracker.result(ending)

    def _tracker(self, scenario: Scenario, run_id: str) -> tuple[RunTracker, float]:
        """A run's tracker, started now, and its hard deadline."""
        started_wall, started = time.time(), time.monotonic()
        tracker = RunTracker(
            scenario.name,
            run_id,
            scenario.timeout,
            started_wall,
            started,
            self.redact,
            component=scenario.component,
            trace_id=new_trace_id(),
        )
        return tracker, started + scenario.timeout

    async def _run_in_slot(self, slots: SlotPool, scenario: Scenario, run_id: str) -> RunResult:
        """One run in a slot; the slot goes back only if the run ended with `run_ended`.

        The run's clock starts once it has a ready slot: a slot's start-up (Python, the
        driver, the browser) is bounded by SLOT_START_SECONDS and is never blamed on
        the target as a timeout.
        """
        try:
            slot: Slot | None = await slots.take()
        except OSError as exc:
            tracker, _ = self._tracker(scenario, run_id)
            return tracker.not_started(f"cannot start worker: {exc}", time.monotonic())
        assert slot is not None
        tracker, hard_deadline = self._tracker(scenario, run_id)
        assert tracker.trace_id is not None  # _tracker mints it
        spec = self._spec(scenario, tracker.run_id, tracker.trace_id, hard_deadline)

        def on_line(line: bytes) -> Reading:
            reading = tracker.line(line, time.monotonic())
            return "more" if reading == "done" and tracker.ended is None else reading

        try:
            ending = await self.processes.stream(
                slot.worker,
                spec.model_dump_json().encode(),
                on_line,
                hard_deadline,
                keep_stdin_open=True,
            )
            if tracker.timed_out(ending):  # before the kill: is it our browser that hung?
                tracker.stopped_processes = await asyncio.to_thread(
                    stopped_in_run, slot.worker.process.pid, slot.worker.tag
                )
            # A run that hit its deadline never leaves its slot alive, even if the worker
            # reported it itself: whatever wedged the page may still be running.
            clean = (
                ending.how == "done"
                and tracker.ended is not None
                and tracker.finished is not None
                and tracker.finished.result is not Outcome.TIMEOUT
            )
            crashed = tracker.ended is not None and tracker.ended.browser_crashed
            timed_out = tracker.timed_out(ending) or (
                tracker.finished is not None and tracker.finished.result is Outcome.TIMEOUT
            )
            # Shielded: a cancelled run must still retire or return its slot.
            done, slot = slot, None
            await asyncio.shield(slots.give_back(done, clean, crashed, timed_out))
        finally:
            if slot is not None:  # cancelled (shutdown) mid-run: the slot goes with it
                await asyncio.shield(self.processes.retire(slot.worker))
            await asyncio.shield(self._keep_artifacts(tracker))
        return tracker.result(ending)

    def _spec(
        self, scenario: Scenario, run_id: str, trace_id: str, hard_deadline: float
    ) -> WorkerSpec:
        return WorkerSpec(
            run_id=run_id,
            scenario=scenario.name,
            steps=scenario.steps,
            script=scenario.script,
            params=scenario.params,
            component=scenario.component,
            soft_deadline=hard_deadline - soft_margin(scenario.timeout),
            hard_deadline=hard_deadline,
            secrets=list(self.redact.secrets),
            python_path=self.python_path,
            artifacts_dir=str(self.artifacts.directory) if self.artifacts else None,
            trace_on_success=self.trace_on_success,
            propagation=Propagation(
                trace_id=trace_id,
                targets=targets(scenario.goto_urls, scenario.trace_propagation_hosts),
            ),
        )

    async def _start_slot(self) -> Worker:
        """A slot worker whose browser is up; OSError (naming why) if it does not come up.

        Cancelled while the browser starts (prober stopping), the worker goes with it.
        """
        worker = await self._start(f"slot-{new_run_id()}", True, slot=True)
        try:
            await self._slot_ready(worker)
        except BaseException:
            await asyncio.shield(self.processes.retire(worker))
            raise
        return worker

    async def _slot_ready(self, worker: Worker) -> SlotReady:
        """The slot's first line, once its browser is up; OSError if it is not."""
        assert worker.process.stdout is not None
        try:
            line = await asyncio.wait_for(worker.process.stdout.readline(), SLOT_START_SECONDS)
            ready = decode(line)
        except (TimeoutError, ValueError) as exc:
            why = "no answer" if isinstance(exc, TimeoutError) else str(exc)
            raise OSError(f"slot did not start within {SLOT_START_SECONDS:g}s: {why}") from None
        if not isinstance(ready, SlotReady) or ready.error:
            error = ready.error if isinstance(ready, SlotReady) else f"got {ready.event}"
            raise OSError(f"browser launch failed: {self.redact(error or '')}")
        return ready

    async def _start(self, tag: str, launch_browser: bool, slot: bool = False) -> Worker:
        """A worker with its launch settings: it prepares while the run is not yet due."""
        launch = LaunchSpec(
            browser_path=self.browser_path,
            browser_args=self.browser_args,
            launch_browser=launch_browser,
            ca_file=self.ca_file,
            slot=slot,
        )
        return await self.processes.start(tag, launch.model_dump_json().encode() + b"\n")

    async def _clean_up(self, worker: Worker, tracker: RunTracker) -> None:
        try:
            await self.processes.retire(worker)
            await self._keep_artifacts(tracker)
        finally:
            if self.pool is not None:
                self.pool.replenish()

    async def _keep_artifacts(self, tracker: RunTracker) -> None:
        """Once the worker is gone: drop its staging files, apply retention, list what exists."""
        if self.artifacts is None:
            return
        # Shielded: a run cancelled at shutdown must still not leave unscrubbed files.
        names, error = await asyncio.shield(
            asyncio.to_thread(
                self.artifacts.finish_run, tracker.run_id, tracker.artifacts, tracker.artifact_error
            )
        )
        tracker.kept_artifacts(names, error)
