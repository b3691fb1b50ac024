"""The outcome of one run: what metrics, logs, `prober run`, history and the API show.

`RunResult.to_json` and `RunResult.from_json` are its one serialisation: the JSON of
`prober run`, the rows of the SQLite history and the API's runs are all this.
"""

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, Field, TypeAdapter

# The component of a step that names none, unless its scenario says otherwise.
DEFAULT_COMPONENT = "app"


def new_run_id() -> str:
    """Sortable and readable in artifact names: `20261124T070512Z-3f9a1c2b`."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


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
    # The server's certificate was not trusted (expired, wrong name, unknown CA: see
    # PROBER_CA_FILE): the target failed, but an SRE fixes it in a different place.
    TLS = "tls"


# How far a document got, each in seconds from its navigation's start: the `phase` label.
Phase = Literal[
    "ttfb",
    "dom_content_loaded",
    "load",
    "first_contentful_paint",
    "largest_contentful_paint",
]
PHASES: tuple[Phase, ...] = get_args(Phase)

# A W3C trace-context trace id: 16 bytes as 32 lowercase hex digits (all-zero is invalid).
TRACE_ID_PATTERN = r"^[0-9a-f]{32}$"


def _valid_trace_id(value: str) -> str:
    if value == "0" * 32:
        raise ValueError("an all-zero trace id is invalid (W3C trace context)")
    return value


TraceId = Annotated[str, Field(pattern=TRACE_ID_PATTERN), AfterValidator(_valid_trace_id)]


@dataclass(frozen=True)
class StepResult:
    name: str
    duration_seconds: float
    ok: bool
    # The part of the flow the step exercises (`component:`); a label of its own metrics.
    component: str = DEFAULT_COMPONENT


@dataclass(frozen=True)
class PageTiming:
    """One document the run loaded, owned by the step that navigated to it.

    Measured in the worker (prober.worker.timings).
    """

    step: str
    # Seconds from the navigation's start, for each phase the document reached.
    phases: dict[str, float]
    cumulative_layout_shift: float | None = None


# Why a request counts as failed: the `kind` label of prober_step_failed_requests_total.
RequestFailure = Literal["network", "http_4xx", "http_5xx"]
REQUEST_FAILURES: tuple[RequestFailure, ...] = get_args(RequestFailure)


@dataclass(frozen=True)
class StepRequests:
    """How many requests the page made while a step ran, and how many of those failed.

    A request belongs to the step running when the page issued it (prober.worker.network).
    """

    step: str
    requests: int
    network: int = 0
    http_4xx: int = 0
    http_5xx: int = 0


@dataclass(frozen=True)
class FailedRequest:
    """One request that got no answer (`error`) or an HTTP status >= 400 (`status`).

    `url` has its query values masked and secrets masked, so it is safe to show.
    """

    step: str
    method: str
    url: str
    status: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Certificate:
    """The server certificate of an HTTPS document the run loaded (main frames only).

    `host` is lower-case, with the port unless it is 443: another port is another server.
    """

    host: str
    # Unix time of the certificate's notAfter.
    expires_at: float


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
    # The run's W3C trace id (32 lowercase hex), minted by the parent with the run id: the
    # `traceparent` the page sends to the scenario's own origins, and the exported spans.
    trace_id: TraceId | None = None
    # Per step that made requests; the failed ones listed below are the first few only.
    request_counts: tuple[StepRequests, ...] = ()
    failed_requests: tuple[FailedRequest, ...] = ()
    certificates: tuple[Certificate, ...] = ()

    @property
    def ok(self) -> bool:
        return self.result is Outcome.SUCCESS

    def to_json(self) -> dict[str, Any]:
        """The run-result JSON of DESIGN.md: every field, in field order, JSON types only."""
        data: dict[str, Any] = _SERIALISED.dump_python(self, mode="json")
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RunResult":
        """The inverse of `to_json`, validated; a field a writer did not know is defaulted."""
        return _SERIALISED.validate_python(data)


# Keys and types come from the dataclasses above, so they are written down only once.
_SERIALISED: TypeAdapter[RunResult] = TypeAdapter(RunResult)
