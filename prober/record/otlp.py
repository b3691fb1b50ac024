"""The OTLP/HTTP span exporter behind prober.record.traces (imported only when enabled).

Spans are built finished (`ReadableSpan`) from a RunResult and queued to the SDK's
`BatchSpanProcessor`, which exports from its own thread: a slow or absent collector
costs the event loop nothing, and the SDK's exporter reads the endpoint, headers,
timeout, compression and certificates from the standard OTEL_EXPORTER_OTLP_* variables.

Times: the run span runs from the run's start to its end as the sinks are told of it;
the browser launch comes first, then each step, back to back, in order (the worker
times steps, not the gaps between them, which are microseconds of bookkeeping).
"""

import logging

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from prober import __version__
from prober.contracts.result import Outcome, RunResult
from prober.contracts.tracecontext import span_id

log = logging.getLogger(__name__)

LAUNCH_SPAN = "browser launch"  # not a valid step name, so never a step's span
SCOPE = InstrumentationScope("prober", __version__)
NS = 1_000_000_000
SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class SpanSink:
    """A run sink: each finished run with a trace id becomes spans on the export queue."""

    def __init__(self, processor: BatchSpanProcessor, resource: Resource) -> None:
        self._processor = processor
        self._resource = resource

    @classmethod
    def from_environment(cls, service_name: str, location: str | None) -> "SpanSink":
        return cls.with_exporter(OTLPSpanExporter(), service_name, location)

    @classmethod
    def with_exporter(
        cls, exporter: SpanExporter, service_name: str, location: str | None
    ) -> "SpanSink":
        # Resource.create also reads OTEL_RESOURCE_ATTRIBUTES; ours win on their keys.
        attributes = {"service.name": service_name, "service.version": __version__}
        if location:
            attributes["prober.location"] = location
        return cls(BatchSpanProcessor(exporter), Resource.create(attributes))

    def run_started(self, scenario: str, run_id: str) -> None:
        """Spans are built when the run has ended, from its timings."""

    def run_ended(
        self, scenario: str, run_id: str, result: RunResult | None, ended_at: float
    ) -> None:
        if result is None or result.trace_id is None:
            return
        for span in spans(result, ended_at, self._resource):
            self._processor.on_end(span)

    def flush(self, timeout_seconds: float = 5.0) -> bool:
        """Export what is queued now (blocking, bounded); False if it did not finish."""
        return self._processor.force_flush(int(timeout_seconds * 1000))

    def close(self, timeout_seconds: float = 5.0) -> None:
        """Export what is queued (bounded), then stop the exporter thread."""
        self.flush(timeout_seconds)
        self._processor.shutdown()  # type: ignore[no-untyped-call]


def spans(result: RunResult, ended_at: float, resource: Resource) -> list[ReadableSpan]:
    """The run's span and its children, in start order."""
    assert result.trace_id is not None
    trace = int(result.trace_id, 16)
    run_context = _context(trace, span_id(result.trace_id))
    start = result.started_at
    end = max(ended_at, start)
    failed = result.result is not Outcome.SUCCESS
    run_attributes: dict[str, str | int] = {
        "prober.scenario": result.scenario,
        "prober.run_id": result.run_id,
        "prober.result": result.result.value,
        "prober.attempt": result.attempt,
    }
    if result.reason is not None:
        run_attributes["prober.reason"] = result.reason.value
    if result.failed_step is not None:
        run_attributes["prober.failed_step"] = result.failed_step
    made = [
        _span(
            result.scenario,
            run_context,
            None,
            resource,
            start,
            end,
            Status(StatusCode.ERROR, result.error or result.result.value)
            if failed
            else Status(StatusCode.OK),
            run_attributes,
        )
    ]
    cursor = start
    if result.browser_launch_seconds is not None:
        launch_end = cursor + result.browser_launch_seconds
        made.append(
            _span(
                LAUNCH_SPAN,
                _context(trace, span_id(result.trace_id, LAUNCH_SPAN)),
                run_context,
                resource,
                cursor,
                launch_end,
                Status(StatusCode.OK),
                {"prober.scenario": result.scenario},
            )
        )
        cursor = launch_end
    for step in result.steps:
        step_end = cursor + step.duration_seconds
        status = (
            Status(StatusCode.OK)
            if step.ok
            else Status(StatusCode.ERROR, result.error or result.result.value)
        )
        made.append(
            _span(
                step.name,
                _context(trace, span_id(result.trace_id, step.name)),
                run_context,
                resource,
                cursor,
                step_end,
                status,
                {
                    "prober.scenario": result.scenario,
                    "prober.step": step.name,
                    "prober.component": step.component,
                },
            )
        )
        cursor = step_end
    return made


def _context(trace: int, span: str) -> SpanContext:
    return SpanContext(trace, int(span, 16), is_remote=False, trace_flags=SAMPLED)


def _span(
    name: str,
    context: SpanContext,
    parent: SpanContext | None,
    resource: Resource,
    start: float,
    end: float,
    status: Status,
    attributes: dict[str, str | int],
) -> ReadableSpan:
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=attributes,
        kind=SpanKind.INTERNAL,
        status=status,
        start_time=int(start * NS),
        end_time=int(end * NS),
        instrumentation_scope=SCOPE,
    )
