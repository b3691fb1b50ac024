"""What crosses the pipe between the parent and a worker.

The parent writes one `WorkerSpec` as JSON on the worker's stdin; the worker streams one
JSON event per line back. Streaming (rather than one result at exit) is what lets a run
killed at its timeout still report the steps it finished and the one it was stuck in.
"""

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from prober.config import Step

EventName = Literal[
    "browser_launched",
    "step_started",
    "step_finished",
    "page_timing",
    "artifact",
    "artifact_error",
    "run_finished",
]


class WorkerSpec(BaseModel):
    """Everything one run needs; values from the environment are already expanded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    scenario: str
    steps: list[Step] | None = None
    script: str | None = None
    params: dict[str, Any] = {}
    # An absolute CLOCK_MONOTONIC time (shared by all processes on the host), slightly
    # before the parent's hard kill, so the worker can still report and clean up.
    soft_deadline: float
    # The parent's hard kill (same clock): failure artifacts are taken between the two.
    hard_deadline: float | None = None
    browser_path: str
    browser_args: list[str]
    secrets: list[str] = []
    python_path: list[str] = []
    # `{data_dir}/artifacts`; None keeps no artifacts (and records no trace).
    artifacts_dir: str | None = None
    trace_on_success: bool = False


def encode_event(event: EventName, **fields: Any) -> bytes:
    return (json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n").encode()
