"""What crosses the pipe between the parent and a worker: the specs in, the events out.

The parent writes one `LaunchSpec` line on the worker's stdin when it starts the worker,
then one `WorkerSpec` as JSON (and closes stdin) when the run is due; the worker streams
one event per line back (NDJSON). A slot worker (`LaunchSpec.slot`, see
prober/supervise/slots.py) instead reads one `WorkerSpec` per line until EOF, runs each
in a fresh browser context, and ends every run with `RunEnded` once that run's context
is closed and its files are written; its first line, `SlotReady`, says the browser is up.
The split lets a worker start Python, Playwright's driver and the browser before the
run is due (see prober/supervise/pool.py). Streaming (rather than one result at exit)
is what lets a run killed at its timeout still report the steps it finished and the
one it was stuck in.

Every event is a model below; `encode` is the only writer of the wire format and
`decode` the only reader, for the worker, the parent and the test stubs alike. The
parent trusts nothing it reads: a line `decode` rejects is not an event (see
prober.supervise.tracker, which counts such lines).
"""

from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from prober.contracts.result import (
    DEFAULT_COMPONENT,
    Certificate,
    FailedRequest,
    Outcome,
    PageTiming,
    Phase,
    Reason,
    StepRequests,
)
from prober.contracts.secrets import Redactor
from prober.contracts.steps import COMPONENT_NAME, Step
from prober.contracts.tracecontext import Propagation

# Free text (an error message) is cut to this many characters, after masking: cutting
# first could leave part of a secret unmasked.
MAX_TEXT = 600
# Figures beyond this are nonsense (a clock jump, a tab left open), not a slow page.
MAX_PLAUSIBLE_SECONDS = 3600.0
# Failed requests a run lists one by one (its counts cover all of them).
MAX_FAILED_REQUESTS = 20
# Certificate hosts one run reports: each is a label value of the expiry metric.
MAX_CERTIFICATE_HOSTS = 10
# A host as prober.worker.network.certificate_host writes it: name or address, port.
HOST_LABEL = r"^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(:[0-9]{1,5})?$"
# Cumulative layout shift is the largest sum of shift scores (each at most 1) within a
# window of at most 5 s; scores above 0.25 are already "poor", and above this no page
# that renders has been seen: a larger figure was made up by the page, not measured.
MAX_PLAUSIBLE_LAYOUT_SHIFT = 100.0
# Documents measured per run. A flow loads a handful; the binding a page can call at
# will must not be able to grow a run's result, its metrics or `prober run`'s output.
MAX_PAGE_TIMINGS_PER_RUN = 100

Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
# A label value (prober_component_*): only what the scenario file allows.
Component = Annotated[str, Field(pattern=COMPONENT_NAME, max_length=63)]
PhaseSeconds = Annotated[float, Field(gt=0, le=MAX_PLAUSIBLE_SECONDS, allow_inf_nan=False)]
LayoutShift = Annotated[float, Field(ge=0, le=MAX_PLAUSIBLE_LAYOUT_SHIFT, allow_inf_nan=False)]


class LaunchSpec(BaseModel):
    """What a worker may prepare before it knows which run it will perform."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    browser_path: str
    browser_args: list[str]
    # Launch the browser at once, rather than when the WorkerSpec arrives. The driver is
    # always started at once.
    launch_browser: bool = True
    # PROBER_CA_FILE: private CAs the browser trusts (prober.worker.trust).
    ca_file: str | None = None
    # Serve one WorkerSpec per stdin line, each in a fresh context of the same browser,
    # until EOF (context isolation); False: one spec, then exit (process isolation).
    slot: bool = False


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
    # The run's trace and where its `traceparent` goes; None sends none.
    propagation: Propagation | None = None


class _Event(BaseModel):
    # Strict: a boolean is no duration and "slow" no number, whatever Python would allow.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class BrowserLaunched(_Event):
    """The page is ready and the steps start now.

    `duration_seconds` is what this run waited for its page: the whole launch for a cold
    worker, next to nothing for one whose browser was launched before the run was due.
    """

    event: Literal["browser_launched"] = "browser_launched"
    duration_seconds: Seconds
    browser_version: str = ""


class StepStarted(_Event):
    """Until its StepFinished, the step a run killed at its deadline is blamed on."""

    event: Literal["step_started"] = "step_started"
    step: str
    # None: the scenario's own component.
    component: Component | None = None


class StepFinished(_Event):
    """A step's duration, measured in the worker with a monotonic clock around its block."""

    event: Literal["step_finished"] = "step_finished"
    step: str
    component: Component | None = None
    duration_seconds: Seconds
    ok: bool
    reason: Reason | None = None
    error: str | None = None


class PageTimingReported(_Event):
    """One document's phases (seconds from its navigation's start), owned by `step`."""

    event: Literal["page_timing"] = "page_timing"
    step: str
    phases: dict[Phase, PhaseSeconds] = {}
    cumulative_layout_shift: LayoutShift | None = None

    def timing(self) -> PageTiming:
        phases: dict[str, float] = {phase: seconds for phase, seconds in self.phases.items()}
        return PageTiming(self.step, phases, self.cumulative_layout_shift)


Count = Annotated[int, Field(ge=0)]


class RequestsCounted(_Event):
    """A step's request counts so far: each report replaces the previous one for its step.

    Sent when a step ends and when the run ends (requests still in flight when a step
    ends are counted later), so a run killed at its deadline keeps what was reported.
    """

    event: Literal["requests_counted"] = "requests_counted"
    step: str
    requests: Count
    network: Count = 0
    http_4xx: Count = 0
    http_5xx: Count = 0

    def counts(self) -> StepRequests:
        return StepRequests(self.step, self.requests, self.network, self.http_4xx, self.http_5xx)


class RequestFailed(_Event):
    """One failed request, sent when it fails (the worker sends the first few only).

    `url` is already cut down by the worker (query values masked); `encode` masks the
    secrets left in it, in `error`, and everywhere else.
    """

    event: Literal["request_failed"] = "request_failed"
    step: str
    method: Annotated[str, Field(max_length=32)]
    url: str
    status: Annotated[int, Field(ge=400, le=999)] | None = None
    error: str | None = None

    def failed(self) -> FailedRequest:
        return FailedRequest(self.step, self.method, self.url, self.status, self.error)


class CertificateSeen(_Event):
    """An HTTPS main-frame document's server certificate: its host and notAfter."""

    event: Literal["certificate"] = "certificate"
    host: Annotated[str, Field(pattern=HOST_LABEL, max_length=260)]
    expires_at: Annotated[float, Field(ge=0, allow_inf_nan=False)]

    def certificate(self) -> Certificate:
        return Certificate(self.host, self.expires_at)


class ArtifactKept(_Event):
    """A complete, scrubbed file now under its final name in the artifacts directory."""

    event: Literal["artifact"] = "artifact"
    name: str


class ArtifactFailed(_Event):
    """Artifacts of this run cannot be kept (disk full, read-only...); reported once."""

    event: Literal["artifact_error"] = "artifact_error"
    error: str


class RunFinished(_Event):
    """The last event of every run. `duration_seconds` covers the steps and nothing after."""

    event: Literal["run_finished"] = "run_finished"
    result: Outcome
    duration_seconds: Seconds | None = None
    failed_step: str | None = None
    reason: Reason | None = None
    error: str | None = None


class SlotReady(_Event):
    """A slot worker's first line: its browser is up (or `error` says why it is not).

    The parent hands a slot its first run only after this, so a slow launch on a busy
    node is the slot's start-up (an `error` if it fails), never part of a run's timeout.
    """

    event: Literal["slot_ready"] = "slot_ready"
    browser_version: str = ""
    error: str | None = None


class RunEnded(_Event):
    """A slot worker is done with a run: its contexts are closed, its files written.

    Only slot workers send it, after `run_finished`; the parent hands the slot the next
    run only after it. `browser_crashed`: the browser disconnected since the slot's last
    run began (it was relaunched), so the parent recycles the slot.
    """

    event: Literal["run_ended"] = "run_ended"
    browser_crashed: bool = False


Event = Annotated[
    BrowserLaunched
    | StepStarted
    | StepFinished
    | PageTimingReported
    | RequestsCounted
    | RequestFailed
    | CertificateSeen
    | ArtifactKept
    | ArtifactFailed
    | RunFinished
    | SlotReady
    | RunEnded,
    Field(discriminator="event"),
]
_EVENTS: TypeAdapter[Event] = TypeAdapter(Event)


class ProtocolError(ValueError):
    """A line that is not an event of this protocol."""


# Fixed vocabularies and label values from the scenario file itself (which may carry no
# `${...}`): masking one could only turn it into something `decode` rejects.
_LABELS = frozenset({"event", "component"})


def encode(event: Event, redact: Redactor | None = None) -> bytes:
    """One NDJSON line; every string value masked with `redact`, then cut to MAX_TEXT.

    Values, not the encoded line: a short secret ("1") must not eat into numbers, keys
    or the fixed vocabularies (`event`, `result`, `reason`), which cannot carry one.
    """
    cleaned = {
        name: _clean(value, redact)
        for name, value in event
        if isinstance(value, str) and not isinstance(value, Enum) and name not in _LABELS
    }
    return event.model_copy(update=cleaned).model_dump_json().encode() + b"\n"


def decode(line: bytes | str) -> Event:
    """The event on one line; ProtocolError (naming what is wrong) if it is none."""
    try:
        return _EVENTS.validate_json(line)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise ProtocolError(
            f"not an event: {where + ': ' if where else ''}{problem['msg']}"
        ) from None


def _clean(text: str, redact: Redactor | None) -> str:
    masked = redact(text) if redact is not None else text
    return masked if len(masked) <= MAX_TEXT else masked[: MAX_TEXT - 1] + "…"
