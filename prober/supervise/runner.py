"""Parent side of a run: a worker process, its events folded into a result, clean-up.

The work is split three ways: prober.supervise.processes starts, streams, kills and
reaps worker processes; prober.supervise.tracker says what a run's events came to;
this module ties the two together for one run and owns what outlives a run (the
pool of pre-started workers, the artifact store). Whatever the worker does (finish,
fail, hang, crash, flood its stdout, print garbage), `WorkerRunner.run` returns
exactly one RunResult and leaves no process behind.
"""

import asyncio
import sys
import time
from collections.abc import Sequence

from prober.contracts.config import Scenario
from prober.contracts.protocol import LaunchSpec, WorkerSpec
from prober.contracts.result import RunResult, new_run_id
from prober.contracts.secrets import Redactor
from prober.contracts.tracecontext import Propagation, new_trace_id, targets
from prober.supervise.artifacts import ArtifactStore
from prober.supervise.pool import Prewarm, WarmPool
from prober.supervise.processes import Worker, WorkerProcesses, stopped_in_run
from prober.supervise.tracker import RunTracker

WORKER_COMMAND = (sys.executable, "-m", "prober.worker")


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
    ) -> None:
        self.browser_path = browser_path
        self.browser_args = list(browser_args)
        self.redact = redact
        self.python_path = list(python_path)
        self.artifacts = artifacts
        self.trace_on_success = trace_on_success
        self.ca_file = ca_file
        self.processes = WorkerProcesses(command, exit_wait)
        self.pool = (
            None
            if prewarm == "none"
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

    async def close(self) -> None:
        """Kill pre-started workers that will not be needed (prober shutdown)."""
        if self.pool is not None:
            await self.pool.close()

    async def run(self, scenario: Scenario, run_id: str | None = None) -> RunResult:
        run_id = run_id or new_run_id()
        trace_id = new_trace_id()
        started_wall, started = time.time(), time.monotonic()
        hard_deadline = started + scenario.timeout
        tracker = RunTracker(
            scenario.name,
            run_id,
            scenario.timeout,
            started_wall,
            started,
            self.redact,
            component=scenario.component,
            trace_id=trace_id,
        )
        worker = await self.pool.take() if self.pool is not None else None
        if worker is None:
            try:
                worker = await self._start(run_id, launch_browser=True)
            except OSError as exc:
                return tracker.not_started(f"cannot start worker: {exc}", time.monotonic())
        spec = self._spec(scenario, run_id, trace_id, hard_deadline)
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

    async def _start(self, tag: str, launch_browser: bool) -> Worker:
        """A worker with its launch settings: it prepares while the run is not yet due."""
        launch = LaunchSpec(
            browser_path=self.browser_path,
            browser_args=self.browser_args,
            launch_browser=launch_browser,
            ca_file=self.ca_file,
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
