"""Parent side of a run: spawn a worker, stream its events, enforce the timeout, clean up.

Whatever the worker does (finish, fail, hang, crash, flood its stdout, print garbage),
`WorkerRunner.run` returns exactly one RunResult and leaves no process behind.
"""

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prober.contracts.config import Scenario
from prober.contracts.protocol import (
    ArtifactFailed,
    ArtifactKept,
    BrowserLaunched,
    LaunchSpec,
    PageTimingReported,
    ProtocolError,
    RunFinished,
    StepFinished,
    StepStarted,
    WorkerSpec,
    decode,
)
from prober.contracts.result import (
    Outcome,
    PageTiming,
    Reason,
    RunResult,
    StepResult,
    new_run_id,
)
from prober.contracts.secrets import Redactor
from prober.supervise import processes
from prober.supervise.artifacts import ArtifactStore
from prober.supervise.pool import Prewarm, WarmPool, Worker, stop_worker

log = logging.getLogger(__name__)

WORKER_COMMAND = (sys.executable, "-m", "prober.worker")
MAX_EVENT_BYTES = 1 << 20
# A worker that writes this many lines that are not events is broken (ours, not the
# target's): stop it now rather than parse garbage until the timeout blames the target.
MAX_GARBAGE_LINES = 1000
STDERR_TAIL_BYTES = 2048
# The directory that holds the `prober` package (this file is prober/supervise/runner.py).
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def soft_margin(timeout: float) -> float:
    """How long before the hard kill the worker stops by itself to report and clean up."""
    return min(2.0, 0.15 * timeout)


@dataclass
class _RunTracker:
    """Folds the event stream into what we know so far, so a killed run still reports."""

    redact: Redactor
    steps: list[StepResult] = field(default_factory=list)
    current_step: str | None = None
    current_step_started: float = 0.0
    body_started: float | None = None
    launch_seconds: float | None = None
    finished: RunFinished | None = None
    # When supervision ended: durations must not include the clean-up after it.
    stopped_at: float | None = None
    garbage_lines: int = 0
    first_garbage: str | None = None
    started_steps: set[str] = field(default_factory=set)
    page_timings: list[PageTiming] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    artifact_error: str | None = None
    # A step the worker reported as failed: a worker killed while it saves artifacts
    # has already closed the step, so no step is in progress to blame.
    failed_step: str | None = None

    def feed(self, line: bytes) -> None:
        try:
            event = decode(line)
        except ProtocolError:
            self._garbage(line)
            return
        now = time.monotonic()
        match event:
            case BrowserLaunched():
                self.launch_seconds = event.duration_seconds
                self.body_started = now
            case StepStarted(step=step):
                self.current_step, self.current_step_started = step, now
                self.started_steps.add(step)
            case StepFinished(step=step, duration_seconds=duration, ok=ok):
                self.steps.append(StepResult(step, duration, ok))
                self.current_step = None
                if not ok:
                    self.failed_step = step
            case PageTimingReported():
                # Only steps the run announced: a label value from anywhere else is garbage.
                if event.step in self.started_steps:
                    self.page_timings.append(event.timing())
            case ArtifactKept(name=name):
                self.artifacts.append(name)
            case ArtifactFailed(error=error):
                self.artifact_error = self.artifact_error or error
            case RunFinished():
                self.finished = event

    def _garbage(self, line: bytes) -> None:
        self.garbage_lines += 1
        if self.first_garbage is None:
            text = self.redact(line.decode("utf-8", "replace").strip())
            self.first_garbage = text[:200]

    def interrupted_step(self) -> str | None:
        """Record the step the worker was in when it stopped reporting, as a failed step."""
        if self.current_step is None:
            return None
        duration = (self.stopped_at or time.monotonic()) - self.current_step_started
        self.steps.append(StepResult(self.current_step, duration, False))
        return self.current_step


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
    ) -> None:
        self.browser_path = browser_path
        self.browser_args = list(browser_args)
        self.redact = redact
        self.python_path = list(python_path)
        self.command = list(command)
        self.exit_wait = exit_wait
        self.artifacts = artifacts
        self.trace_on_success = trace_on_success
        # Pids asyncio is waiting for: the orphan reaper must not steal their exit status.
        self.live_pids: set[int] = set()
        self.pool = (
            None
            if prewarm == "none"
            else WarmPool(
                lambda: self._spawn(f"warm-{new_run_id()}", prewarm == "browser"),
                self._retire,
                pool_size,
            )
        )

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
        started_wall, started = time.time(), time.monotonic()
        hard_deadline = started + scenario.timeout
        spec = WorkerSpec(
            run_id=run_id,
            scenario=scenario.name,
            steps=scenario.steps,
            script=scenario.script,
            params=scenario.params,
            soft_deadline=hard_deadline - soft_margin(scenario.timeout),
            hard_deadline=hard_deadline,
            secrets=list(self.redact.secrets),
            python_path=self.python_path,
            artifacts_dir=str(self.artifacts.directory) if self.artifacts else None,
            trace_on_success=self.trace_on_success,
        )
        tracker = _RunTracker(self.redact)

        def result(outcome: Outcome, **fields: Any) -> RunResult:
            elapsed = (tracker.stopped_at or time.monotonic()) - (tracker.body_started or started)
            error = fields.pop("error", None)
            fields.setdefault("duration_seconds", elapsed)
            return RunResult(
                scenario=scenario.name,
                run_id=run_id,
                result=outcome,
                started_at=started_wall,
                steps=tuple(tracker.steps),
                browser_launch_seconds=tracker.launch_seconds,
                error=self.redact(error) if error else None,
                artifacts=tuple(tracker.artifacts),
                artifact_error=self.redact(tracker.artifact_error)
                if tracker.artifact_error
                else None,
                page_timings=tuple(tracker.page_timings),
                **fields,
            )

        worker = await self.pool.take() if self.pool is not None else None
        if worker is None:
            try:
                worker = await self._spawn(run_id, launch_browser=True)
            except OSError as exc:
                return result(Outcome.ERROR, error=f"cannot start worker: {exc}")
        try:
            outcome = await self._supervise(worker.process, spec, tracker, hard_deadline)
        finally:
            tracker.stopped_at = time.monotonic()
            # Shielded as one unit: a second cancellation (grace over, then a second
            # SIGTERM) must not skip removing the unscrubbed staging files.
            await asyncio.shield(self._clean_up(worker, run_id, tracker))
        if tracker.finished is not None:  # reported, even if the exit then overran
            return self._reported(tracker, result)
        if outcome == "timeout":
            if tracker.body_started is None:
                return result(
                    Outcome.ERROR,
                    error=f"browser did not start within the {scenario.timeout:g}s timeout",
                )
            failed = tracker.interrupted_step() or tracker.failed_step
            return result(
                Outcome.TIMEOUT,
                failed_step=failed,
                reason=Reason.TIMEOUT,
                error=f"killed at the {scenario.timeout:g}s timeout"
                + (f" in step {failed!r}" if failed else ""),
            )
        if outcome in ("overflow", "flood"):
            flood = (
                f"a line longer than {MAX_EVENT_BYTES} bytes"
                if outcome == "overflow"
                else f"{tracker.garbage_lines} unparseable lines, first: {tracker.first_garbage!r}"
            )
            return result(
                Outcome.ERROR,
                failed_step=tracker.interrupted_step(),
                reason=Reason.CRASH,
                error=f"worker wrote {flood}",
            )
        failed = tracker.interrupted_step()
        detail = _stderr_summary(worker.stderr_tail, self.redact)
        if tracker.garbage_lines:
            detail = (
                f"{tracker.garbage_lines} unparseable line(s) on stdout, first: "
                f"{tracker.first_garbage!r}; " + detail
            )
        return result(
            Outcome.ERROR,
            failed_step=failed,
            reason=Reason.CRASH,
            error=f"worker exited with {_exit_text(worker.process.returncode)} without a result; "
            + detail,
        )

    async def _supervise(
        self,
        process: asyncio.subprocess.Process,
        spec: WorkerSpec,
        tracker: _RunTracker,
        hard_deadline: float,
    ) -> str:
        """Feed the spec, read events until the result or EOF.

        Returns 'done', 'timeout', 'overflow' (an over-long line) or 'flood' (garbage).
        """
        assert process.stdin and process.stdout
        try:
            async with asyncio.timeout_at(hard_deadline):
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    process.stdin.write(spec.model_dump_json().encode())
                    await process.stdin.drain()
                    process.stdin.close()
                while tracker.finished is None:
                    try:
                        line = await process.stdout.readline()
                    except ValueError:  # a line over the stream limit
                        return "overflow"
                    if not line:
                        break
                    tracker.feed(line)
                    if tracker.garbage_lines >= MAX_GARBAGE_LINES:
                        return "flood"
                # The result is in (or the worker is gone): give it a moment to exit cleanly.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), self.exit_wait)
        except TimeoutError:
            return "timeout"
        return "done"

    async def _spawn(self, tag: str, launch_browser: bool) -> Worker:
        """Start a worker in its own session and give it its launch settings at once."""
        # Playwright and Chromium put profiles and temp files (and the raw trace) under
        # TMPDIR and never remove them when killed; each worker gets a private directory,
        # removed when it retires.
        # Short on purpose: Chromium puts Unix sockets below it, and a socket path over 107
        # bytes makes every launch fail, so the tag (kills find processes by environment)
        # stays out of the name.
        scratch = tempfile.mkdtemp(prefix="prober-")
        try:
            process = await self._exec(tag, scratch)
        except OSError:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        self.live_pids.add(process.pid)
        worker = Worker(process, tag, scratch)
        worker.drain_stderr()
        assert process.stdin is not None
        launch = LaunchSpec(
            browser_path=self.browser_path,
            browser_args=self.browser_args,
            launch_browser=launch_browser,
        )
        process.stdin.write(launch.model_dump_json().encode() + b"\n")
        return worker

    async def _exec(self, tag: str, scratch: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            env=self._environment(tag, scratch),
            limit=MAX_EVENT_BYTES,
        )

    async def _retire(self, worker: Worker) -> None:
        try:
            await stop_worker(worker)
        finally:
            self.live_pids.discard(worker.process.pid)
            await asyncio.to_thread(shutil.rmtree, worker.scratch, True)
            # Chromium's helpers (crashpad, zygote) outlive the driver and re-parent to
            # us; they are dead by now but untagged (a zombie's environment is gone), so
            # reap them here rather than leave them to the service's periodic reaper.
            processes.reap_orphans(exclude=self.live_pids)

    async def _clean_up(self, worker: Worker, run_id: str, tracker: _RunTracker) -> None:
        try:
            await self._retire(worker)
            await self._keep_artifacts(run_id, tracker)
        finally:
            if self.pool is not None:
                self.pool.replenish()

    async def _keep_artifacts(self, run_id: str, tracker: _RunTracker) -> None:
        """Once the worker is gone: drop its staging files, apply retention, list what exists."""
        if self.artifacts is None:
            return
        # Shielded: a run cancelled at shutdown must still not leave unscrubbed files.
        names, error = await asyncio.shield(
            asyncio.to_thread(
                self.artifacts.finish_run, run_id, tracker.artifacts, tracker.artifact_error
            )
        )
        tracker.artifacts, tracker.artifact_error = list(names), error

    def _reported(self, tracker: _RunTracker, result: Any) -> RunResult:
        finished = tracker.finished
        assert finished is not None
        fields: dict[str, Any] = {
            "failed_step": finished.failed_step,
            "reason": finished.reason,
            "error": finished.error,
        }
        if finished.duration_seconds is not None:
            fields["duration_seconds"] = finished.duration_seconds
        built: RunResult = result(finished.result, **fields)
        return built

    def _environment(self, tag: str, scratch: str) -> dict[str, str]:
        env = dict(os.environ)
        env[processes.RUN_TAG_ENV] = tag
        # The API token is the prober's; nothing in a run (scripts, browser) needs it.
        env.pop("PROBER_API_TOKEN", None)
        env["TMPDIR"] = scratch
        # The worker must import the same prober as the parent, even from a source tree.
        env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_ROOT, *filter(None, [env.get("PYTHONPATH")])])
        return env


def _stderr_summary(tail: deque[bytes], redact: Redactor) -> str:
    # Masked before cutting, so a secret straddling the cut cannot survive in part.
    text = redact(b"".join(tail).decode("utf-8", "replace"))[-STDERR_TAIL_BYTES:].strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return f"stderr: {' | '.join(lines[-3:])}" if lines else "no output on stderr"


def _exit_text(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"
