"""Parent side of a run: spawn a worker, stream its events, enforce the timeout, clean up.

Whatever the worker does (finish, fail, hang, crash, flood its stdout, print garbage),
`WorkerRunner.run` returns exactly one RunResult and leaves no process behind.
"""

import asyncio
import contextlib
import json
import logging
import os
import secrets
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

from prober import processes
from prober.artifacts import ArtifactStore
from prober.config import Scenario
from prober.protocol import WorkerSpec
from prober.result import Outcome, PageTiming, Reason, RunResult, StepResult
from prober.secrets import Redactor
from prober.timings import from_event

log = logging.getLogger(__name__)

WORKER_COMMAND = (sys.executable, "-m", "prober.worker")
MAX_EVENT_BYTES = 1 << 20
STDERR_TAIL_BYTES = 2048
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


def new_run_id() -> str:
    """Sortable and readable in artifact names: `20261124T070512Z-3f9a1c2b`."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


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
    finished: dict[str, Any] | None = None
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
            event = json.loads(line)
            kind = event["event"]
        except (ValueError, TypeError, KeyError):
            self._garbage(line)
            return
        now = time.monotonic()
        if kind == "browser_launched":
            self.launch_seconds = _number(event.get("duration_seconds"))
            self.body_started = now
        elif kind == "step_started" and isinstance(event.get("step"), str):
            self.current_step, self.current_step_started = event["step"], now
            self.started_steps.add(event["step"])
        elif kind == "step_finished" and isinstance(event.get("step"), str):
            duration = _number(event.get("duration_seconds")) or 0.0
            self.steps.append(StepResult(event["step"], duration, bool(event.get("ok"))))
            self.current_step = None
            if not event.get("ok"):
                self.failed_step = event["step"]
        elif kind == "run_finished":
            self.finished = event
        elif kind == "page_timing":
            timing = from_event(event)
            # Only steps the run announced: a label value from anywhere else is garbage.
            if timing is not None and timing.step in self.started_steps:
                self.page_timings.append(timing)
        elif kind == "artifact" and isinstance(event.get("name"), str):
            self.artifacts.append(event["name"])
        elif kind == "artifact_error" and isinstance(event.get("error"), str):
            self.artifact_error = self.artifact_error or event["error"]
        else:
            self._garbage(line)

    def _garbage(self, line: bytes) -> None:
        self.garbage_lines += 1
        if self.first_garbage is None:
            self.first_garbage = self.redact(line[:200].decode("utf-8", "replace").strip())

    def interrupted_step(self) -> str | None:
        """Record the step the worker was in when it stopped reporting, as a failed step."""
        if self.current_step is None:
            return None
        duration = time.monotonic() - self.current_step_started
        self.steps.append(StepResult(self.current_step, duration, False))
        return self.current_step


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


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
            browser_path=self.browser_path,
            browser_args=self.browser_args,
            secrets=list(self.redact.secrets),
            python_path=self.python_path,
            artifacts_dir=str(self.artifacts.directory) if self.artifacts else None,
            trace_on_success=self.trace_on_success,
        )
        tracker = _RunTracker(self.redact)
        # Playwright and Chromium put profiles and temp files under TMPDIR and never
        # remove them when killed; a private directory per run is removed afterwards.
        scratch = tempfile.mkdtemp(prefix=f"prober-{run_id}-")

        def result(outcome: Outcome, **fields: Any) -> RunResult:
            elapsed = time.monotonic() - (tracker.body_started or started)
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

        try:
            process = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                env=self._environment(run_id, scratch),
                limit=MAX_EVENT_BYTES,
            )
        except OSError as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            return result(Outcome.ERROR, error=f"cannot start worker: {exc}")
        self.live_pids.add(process.pid)
        assert process.stdin and process.stdout and process.stderr
        stderr_tail: deque[bytes] = deque(maxlen=32)
        drain = asyncio.create_task(_drain(process.stderr, stderr_tail))
        try:
            outcome = await self._supervise(process, spec, tracker, hard_deadline)
        finally:
            await self._clean_up(process, run_id)
            drain.cancel()
            self.live_pids.discard(process.pid)
            await asyncio.to_thread(shutil.rmtree, scratch, True)
            await self._keep_artifacts(run_id, tracker)
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
        if outcome == "overflow":
            return result(
                Outcome.ERROR,
                failed_step=tracker.interrupted_step(),
                reason=Reason.CRASH,
                error=f"worker wrote a line longer than {MAX_EVENT_BYTES} bytes",
            )
        if tracker.finished is not None:
            return self._reported(tracker, result)
        failed = tracker.interrupted_step()
        detail = _stderr_summary(stderr_tail)
        if tracker.garbage_lines:
            detail = (
                f"{tracker.garbage_lines} unparseable line(s) on stdout, first: "
                f"{tracker.first_garbage!r}; " + detail
            )
        return result(
            Outcome.ERROR,
            failed_step=failed,
            reason=Reason.CRASH,
            error=f"worker exited with {_exit_text(process.returncode)} without a result; "
            + detail,
        )

    async def _supervise(
        self,
        process: asyncio.subprocess.Process,
        spec: WorkerSpec,
        tracker: _RunTracker,
        hard_deadline: float,
    ) -> str:
        """Feed the spec, read events until the result or EOF; 'done', 'timeout', 'overflow'."""
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
                # The result is in (or the worker is gone): give it a moment to exit cleanly.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), self.exit_wait)
        except TimeoutError:
            return "timeout"
        return "done"

    async def _clean_up(self, process: asyncio.subprocess.Process, run_id: str) -> None:
        """Kill the tree (a no-op after a clean exit), reap it, and wait for the worker."""
        killed = processes.kill_run(process.pid, run_id)
        others = [p for p in killed if p.pid != process.pid]
        try:
            await asyncio.shield(process.wait())
        finally:
            if others:
                survivors = await asyncio.to_thread(processes.reap, others)
                if survivors:
                    log.warning(
                        "processes survived SIGKILL",
                        extra={"run_id": run_id, "pids": [p.pid for p in survivors]},
                    )
            # Browser processes that exited on their own after the worker re-parent to us
            # as zombies; a zombie's environment (and so its tag) can no longer be read.
            processes.reap_orphans(exclude=self.live_pids - {process.pid})

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
        try:
            outcome = Outcome(str(finished.get("result")))
        except ValueError:
            outcome = Outcome.SUCCESS if finished.get("ok") is True else Outcome.FAILURE
        try:
            reason = Reason(finished["reason"]) if finished.get("reason") else None
        except ValueError:
            reason = None
        failed = finished.get("failed_step")
        fields: dict[str, Any] = {
            "failed_step": failed if isinstance(failed, str) else None,
            "reason": reason,
            "error": finished.get("error") if isinstance(finished.get("error"), str) else None,
        }
        duration = _number(finished.get("duration_seconds"))
        if duration is not None:
            fields["duration_seconds"] = duration
        built: RunResult = result(outcome, **fields)
        return built

    def _environment(self, run_id: str, scratch: str) -> dict[str, str]:
        env = dict(os.environ)
        env[processes.RUN_TAG_ENV] = run_id
        env["TMPDIR"] = scratch
        # The worker must import the same prober as the parent, even from a source tree.
        env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_ROOT, *filter(None, [env.get("PYTHONPATH")])])
        return env


async def _drain(stream: asyncio.StreamReader, tail: deque[bytes]) -> None:
    """Keep reading stderr so a chatty worker never blocks on a full pipe."""
    while chunk := await stream.read(4096):
        tail.append(chunk)


def _stderr_summary(tail: deque[bytes]) -> str:
    text = b"".join(tail)[-STDERR_TAIL_BYTES:].decode("utf-8", "replace").strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return f"stderr: {' | '.join(lines[-3:])}" if lines else "no output on stderr"


def _exit_text(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"
