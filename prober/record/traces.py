"""Runs as OpenTelemetry traces, when the standard OTEL_* variables ask for them.

A run is one span and each step a child span, built after the run from its result
(explicit start and end times from the run's timings) and exported over OTLP/HTTP by
the parent: the worker already puts the ids into `traceparent`
(prober.contracts.tracecontext), so it needs no SDK and stays as lean as before.

Without `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (or with
`OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER=none`) there is no exporter and no
cost: this module does not import the SDK; only prober.record.otlp does.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prober.record.otlp import SpanSink

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
DEFAULT_SERVICE_NAME = "prober"


def enabled(environ: Mapping[str, str]) -> bool:
    """The OpenTelemetry variables' own rules: an endpoint set, the SDK not disabled."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {e.strip().lower() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",")}
    if exporters == {"none"}:
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def sink_from_environment(environ: Mapping[str, str], location: str | None) -> "SpanSink | None":
    """The span exporter as a run sink, or None (and nothing imported) when not asked for."""
    if not enabled(environ):
        return None
    from prober.record.otlp import SpanSink

    service_name = environ.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME
    return SpanSink.from_environment(service_name, location)
