"""The outcome of one run: what metrics, logs, `prober run` and history are built from."""

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """`result` of a run. `error` means the prober's own environment failed, not the target."""

    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    ERROR = "error"


class Reason(StrEnum):
    """Why a step failed: a small fixed set, so it can be a metric label."""

    TIMEOUT = "timeout"
    NAVIGATION = "navigation"
    SELECTOR = "selector"
    ASSERTION = "assertion"
    SCRIPT = "script"
    CRASH = "crash"
    # A selector or URL in our own file that no browser accepts (result=error).
    CONFIG = "config"


@dataclass(frozen=True)
class StepResult:
    name: str
    duration_seconds: float
    ok: bool


@dataclass(frozen=True)
class PageTiming:
    """One document the run loaded, owned by the step that navigated to it (prober.timings)."""

    step: str
    # Seconds from the navigation's start, for each phase the document reached.
    phases: dict[str, float]
    cumulative_layout_shift: float | None = None


@dataclass(frozen=True)
class RunResult:
    """One run. `duration_seconds` covers the steps, not the browser launch (that is separate)."""

    scenario: str
    run_id: str
    result: Outcome
    duration_seconds: float
    started_at: float
    steps: tuple[StepResult, ...] = ()
    failed_step: str | None = None
    reason: Reason | None = None
    error: str | None = None
    browser_launch_seconds: float | None = None
    # File names (not paths) under `{data_dir}/artifacts/`, each `{run_id}-{kind}.{ext}`.
    artifacts: tuple[str, ...] = ()
    # 1 for a scheduled or requested run, 2.. for its retries (each retry is its own run).
    attempt: int = 1
    # Why artifacts of this run could not be kept (disk full, read-only...), redacted.
    artifact_error: str | None = None
    page_timings: tuple[PageTiming, ...] = ()

    @property
    def ok(self) -> bool:
        return self.result is Outcome.SUCCESS

    def to_json(self) -> dict[str, Any]:
        """The run-result JSON of DESIGN.md, plus the run id and timing context."""
        data = asdict(self)
        data["result"] = self.result.value
        data["reason"] = self.reason.value if self.reason else None
        data["steps"] = [asdict(step) for step in self.steps]
        data["artifacts"] = list(self.artifacts)
        data["page_timings"] = [asdict(timing) for timing in self.page_timings]
        return data
