"""What a run came to: its worker's events folded into one RunResult.

Pure: no process, no clock (every time is passed in), so each way a run can end is
unit-tested without starting anything (tests/supervise/test_tracker.py). The events
say what the worker saw; the `Ending` (prober.supervise.processes) says how its output
stopped. Together they give exactly one RunResult, even for a worker that was killed
at the deadline, crashed, or wrote garbage: a killed run still reports the steps it
finished and the step it was stuck in.
"""

import signal
from dataclasses import dataclass, field

from prober.contracts.protocol import (
    MAX_CERTIFICATE_HOSTS,
    MAX_FAILED_REQUESTS,
    MAX_PAGE_TIMINGS_PER_RUN,
    ArtifactFailed,
    ArtifactKept,
    BrowserLaunched,
    CertificateSeen,
    Event,
    PageTimingReported,
    ProtocolError,
    RequestFailed,
    RequestsCounted,
    RunEnded,
    RunFinished,
    StepFinished,
    StepStarted,
    decode,
)
from prober.contracts.result import (
    DEFAULT_COMPONENT,
    Certificate,
    FailedRequest,
    Outcome,
    PageTiming,
    Reason,
    RunResult,
    StepRequests,
    StepResult,
)
from prober.contracts.secrets import Redactor
from prober.supervise.processes import MAX_LINE_BYTES, Ending, Reading

# A worker that writes this many lines that are not events is broken (ours, not the
# target's): stop it now rather than parse garbage until the timeout blames the target.
MAX_GARBAGE_LINES = 1000
STDERR_TAIL_BYTES = 2048


@dataclass
class RunTracker:
    """What is known of one run so far; `result` says what it came to once it has ended."""

    scenario: str
    run_id: str
    timeout: float
    # When the run was handed its worker: wall clock for the result, monotonic for
    # durations of runs whose browser never came up.
    started_at: float
    started: float
    redact: Redactor
    # The scenario's component: that of a step whose events name none.
    component: str = DEFAULT_COMPONENT
    # The run's W3C trace id, minted with the run id (prober.contracts.tracecontext).
    trace_id: str | None = None
    steps: list[StepResult] = field(default_factory=list)
    current_step: str | None = None
    current_component: str = DEFAULT_COMPONENT
    current_step_started: float = 0.0
    body_started: float | None = None
    launch_seconds: float | None = None
    finished: RunFinished | None = None
    garbage_lines: int = 0
    first_garbage: str | None = None
    started_steps: set[str] = field(default_factory=set)
    page_timings: list[PageTiming] = field(default_factory=list)
    request_counts: dict[str, StepRequests] = field(default_factory=dict)
    failed_requests: list[FailedRequest] = field(default_factory=list)
    certificates: dict[str, Certificate] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    artifact_error: str | None = None
    # A step the worker reported as failed: a worker killed while it saves artifacts
    # has already closed the step, so no step is in progress to blame.
    failed_step: str | None = None
    # Processes of the run found stopped when it timed out (prober.supervise.runner).
    stopped_processes: list[str] = field(default_factory=list)
    # A slot worker's end of the run (prober.supervise.slots); None from other workers.
    ended: RunEnded | None = None

    def line(self, line: bytes, now: float) -> Reading:
        """One line of the worker's output: read on, the result is in, or give up on it."""
        try:
            event = decode(line)
        except ProtocolError:
            self._garbage(line)
            return "stop" if self.garbage_lines >= MAX_GARBAGE_LINES else "more"
        self.feed(event, now)
        return "done" if self.finished is not None else "more"

    def feed(self, event: Event, now: float) -> None:
        match event:
            case BrowserLaunched():
                self.launch_seconds = event.duration_seconds
                self.body_started = now
            case StepStarted(step=step):
                self.current_step, self.current_step_started = step, now
                self.current_component = event.component or self.component
                self.started_steps.add(step)
            case StepFinished(step=step, duration_seconds=duration, ok=ok):
                self.steps.append(StepResult(step, duration, ok, event.component or self.component))
                self.current_step = None
                if not ok:
                    self.failed_step = step
            case PageTimingReported():
                # Only steps the run announced: a label value from anywhere else is garbage.
                # And no more than a run can measure, none longer than the run: the
                # worker bounds them already (prober.worker.timings); this holds even if not.
                if (
                    event.step in self.started_steps
                    and len(self.page_timings) < MAX_PAGE_TIMINGS_PER_RUN
                    and all(seconds <= self.timeout for seconds in event.phases.values())
                ):
                    self.page_timings.append(event.timing())
            case RequestsCounted(step=step) if step in self.started_steps:
                self.request_counts[step] = event.counts()
            case RequestFailed(step=step) if step in self.started_steps:
                # Whatever a worker sends: ours sends no more than this.
                if len(self.failed_requests) < MAX_FAILED_REQUESTS:
                    self.failed_requests.append(event.failed())
            case CertificateSeen(host=host):
                # A host is a label value: never one that shows a secret, never too many.
                known = host in self.certificates
                if (known or len(self.certificates) < MAX_CERTIFICATE_HOSTS) and (
                    self.redact(host) == host
                ):
                    self.certificates[host] = event.certificate()
            case ArtifactKept(name=name):
                self.artifacts.append(name)
            case ArtifactFailed(error=error):
                self.artifact_error = self.artifact_error or error
            case RunFinished():
                self.finished = event
            case RunEnded():
                self.ended = event

    def kept_artifacts(self, names: tuple[str, ...], error: str | None) -> None:
        """What the artifact store found once the worker was gone (prober.supervise.artifacts)."""
        self.artifacts, self.artifact_error = list(names), error

    def not_started(self, why: str, at: float) -> RunResult:
        """The run never got a worker (the process could not be started)."""
        return self._result(Outcome.ERROR, at, error=why)

    def timed_out(self, ending: Ending) -> bool:
        """Killed at the deadline, or reported as timed out by the worker itself."""
        if self.finished is not None:
            return self.finished.result is Outcome.TIMEOUT
        return ending.how == "timeout"

    def result(self, ending: Ending) -> RunResult:
        """The run's result, from its events and how its worker's output ended."""
        if self.stopped_processes and self.timed_out(ending):
            # A browser that cannot run cannot answer: the environment's fault, not the
            # target's, so `error` (ProberTargetDown must not page for it).
            step = self._interrupted_step(ending.at) or self.failed_step
            if self.finished is not None:
                step = self.finished.failed_step or step
            return self._result(
                Outcome.ERROR,
                ending.at,
                failed_step=step,
                error="the browser was not running at the timeout: stopped processes "
                f"({', '.join(self.stopped_processes[:5])}), e.g. by SIGSTOP or a debugger",
            )
        if self.finished is not None:  # reported, even if the exit then overran
            return self._reported(self.finished, ending.at)
        if ending.how == "timeout":
            if self.body_started is None:
                return self._result(
                    Outcome.ERROR,
                    ending.at,
                    error=f"browser did not start within the {self.timeout:g}s timeout",
                )
            failed = self._interrupted_step(ending.at) or self.failed_step
            return self._result(
                Outcome.TIMEOUT,
                ending.at,
                failed_step=failed,
                reason=Reason.TIMEOUT,
                error=f"killed at the {self.timeout:g}s timeout"
                + (f" in step {failed!r}" if failed else ""),
            )
        if ending.how in ("overflow", "stopped"):
            flood = (
                f"a line longer than {MAX_LINE_BYTES} bytes"
                if ending.how == "overflow"
                else f"{self.garbage_lines} unparseable lines, first: {self.first_garbage!r}"
            )
            return self._result(
                Outcome.ERROR,
                ending.at,
                failed_step=self._interrupted_step(ending.at),
                reason=Reason.CRASH,
                error=f"worker wrote {flood}",
            )
        failed = self._interrupted_step(ending.at)
        detail = _stderr_summary(ending.stderr_tail, self.redact)
        if self.garbage_lines:
            detail = (
                f"{self.garbage_lines} unparseable line(s) on stdout, first: "
                f"{self.first_garbage!r}; " + detail
            )
        return self._result(
            Outcome.ERROR,
            ending.at,
            failed_step=failed,
            reason=Reason.CRASH,
            error=f"worker exited with {_exit_text(ending.returncode)} without a result; " + detail,
        )

    def _reported(self, finished: RunFinished, at: float) -> RunResult:
        return self._result(
            finished.result,
            at,
            duration=finished.duration_seconds,
            failed_step=finished.failed_step,
            reason=finished.reason,
            error=finished.error,
        )

    def _result(
        self,
        outcome: Outcome,
        at: float,
        duration: float | None = None,
        failed_step: str | None = None,
        reason: Reason | None = None,
        error: str | None = None,
    ) -> RunResult:
        """Unreported durations run from the page being ready (else the start) to `at`."""
        if duration is None:
            duration = at - (self.body_started or self.started)
        return RunResult(
            scenario=self.scenario,
            run_id=self.run_id,
            result=outcome,
            duration_seconds=duration,
            started_at=self.started_at,
            steps=tuple(self.steps),
            failed_step=failed_step,
            reason=reason,
            error=self.redact(error) if error else None,
            browser_launch_seconds=self.launch_seconds,
            artifacts=tuple(self.artifacts),
            artifact_error=self.redact(self.artifact_error) if self.artifact_error else None,
            page_timings=tuple(self.page_timings),
            trace_id=self.trace_id,
            request_counts=tuple(self.request_counts.values()),
            failed_requests=tuple(self.failed_requests),
            certificates=tuple(self.certificates.values()),
        )

    def _garbage(self, line: bytes) -> None:
        self.garbage_lines += 1
        if self.first_garbage is None:
            text = self.redact(line.decode("utf-8", "replace").strip())
            self.first_garbage = text[:200]

    def _interrupted_step(self, at: float) -> str | None:
        """Record the step the worker was in when it stopped reporting, as a failed step."""
        if self.current_step is None:
            return None
        self.steps.append(
            StepResult(
                self.current_step, at - self.current_step_started, False, self.current_component
            )
        )
        step, self.current_step = self.current_step, None
        return step


def _stderr_summary(tail: bytes, redact: Redactor) -> str:
    # Masked before cutting, so a secret straddling the cut cannot survive in part.
    text = redact(tail.decode("utf-8", "replace"))[-STDERR_TAIL_BYTES:].strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return f"stderr: {' | '.join(lines[-3:])}" if lines else "no output on stderr"


def _exit_text(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"
