"""What crosses the pipe between the parent and a worker.

The parent writes one `LaunchSpec` line on the worker's stdin when it starts the worker,
then one `WorkerSpec` as JSON (and closes stdin) when the run is due; the worker streams
one JSON event per line back. The split lets a worker start Python, Playwright's driver
and the browser before the run is due (see prober/supervise/pool.py). Streaming (rather than one
result at exit) is what lets a run killed at its timeout still report the steps it
finished and the one it was stuck in.
"""

import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from prober.contracts.config import Step
from prober.contracts.result import DEFAULT_COMPONENT, PageTiming

PHASES = (
    "ttfb",
    "dom_content_loaded",
    "load",
    "first_contentful_paint",
    "largest_contentful_paint",
)
# Figures beyond this are nonsense (a clock jump, a tab left open), not a slow page.
MAX_PLAUSIBLE_SECONDS = 3600.0

EventName = Literal[
    "browser_launched",
    "step_started",
    "step_finished",
    "page_timing",
    "artifact",
    "artifact_error",
    "run_finished",
]


class LaunchSpec(BaseModel):
    """What a worker may prepare before it knows which run it will perform."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    browser_path: str
    browser_args: list[str]
    # Launch the browser at once, rather than when the WorkerSpec arrives. The driver is
    # always started at once.
    launch_browser: bool = True


class WorkerSpec(BaseModel):
    """Everything one run needs; values from the environment are already expanded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    scenario: str
    steps: list[Step] | None = None
    script: str | None = None
    params: dict[str, Any] = {}
    # The scenario's component: that of steps naming none (prober.scenario.api.StepTimer).
    component: str = DEFAULT_COMPONENT
    # An absolute CLOCK_MONOTONIC time (shared by all processes on the host), slightly
    # before the parent's hard kill, so the worker can still report and clean up.
    soft_deadline: float
    # The parent's hard kill (same clock): failure artifacts are taken between the two.
    hard_deadline: float | None = None
    secrets: list[str] = []
    python_path: list[str] = []
    # `{data_dir}/artifacts`; None keeps no artifacts (and records no trace).
    artifacts_dir: str | None = None
    trace_on_success: bool = False


def encode_event(event: EventName, **fields: Any) -> bytes:
    return (json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n").encode()


def page_timing_from_event(event: dict[str, Any]) -> PageTiming | None:
    """The parent's reading of a `page_timing` event (seconds); None if unusable."""
    step = event.get("step")
    return parse_page_timing(event, step, scale=1.0) if isinstance(step, str) else None


def parse_page_timing(data: dict[str, Any], step: str, scale: float) -> PageTiming | None:
    """A document's figures (`scale` units per second) as a PageTiming; None if unusable.

    Phases not reached (0 or missing) are left out, and so is anything implausible."""
    phases = {
        phase: seconds
        for phase in PHASES
        if (seconds := _seconds(data.get(phase), scale)) is not None
    }
    cls = _number(data.get("cumulative_layout_shift"))
    if not phases and cls is None:
        return None
    return PageTiming(step=step, phases=phases, cumulative_layout_shift=cls)


def _seconds(value: Any, scale: float) -> float | None:
    number = _number(value)
    if not number:
        return None
    seconds = number / scale
    return seconds if seconds <= MAX_PLAUSIBLE_SECONDS else None


def _number(value: Any) -> float | None:
    """A finite, non-negative number (JSON from a page may hold anything)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None
