"""Every metric prober exports, and how a RunResult becomes samples.

All metrics live in a registry owned by the parent process; workers only report events.
Semantics that alerts rely on:
- `result="error"` runs (our browser or script environment broke) count in runs_total but
  leave `last_successful` and `last_run_timestamp` alone: the target alert must not fire
  for our own breakage, and a prober that cannot probe goes stale, which pages.
- `interval` and `timeout` are exported so PromQL can say "no run for 3 intervals".
- Duration observations carry the run id and trace id as OpenMetrics exemplars, so a
  slow bucket on a dashboard links to the run (its page, history entry and artifacts)
  and to its trace in Tempo. Both fit OpenMetrics' 128-character exemplar limit.

Each scenario's series live in a registry of their own (a section), with a version that
moves after every change to it. A run's end touches one scenario out of possibly
hundreds, so /metrics (prober.http.exposition) re-renders only the sections whose
version moved instead of all 20,000 samples; the registry passed in still collects
every family whole, for any other reader.
"""

import functools
import itertools
import threading
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

from prober.contracts.components import component_durations, component_outcomes
from prober.contracts.config import Scenario
from prober.contracts.protocol import MAX_CERTIFICATE_HOSTS
from prober.contracts.result import DEFAULT_COMPONENT, REQUEST_FAILURES, Outcome, RunResult

Mutator = TypeVar("Mutator", bound=Callable[..., None])


def _changes(method: Mutator) -> Mutator:
    """Mark a method that updates samples: the sections it touched get new versions, and
    the listeners (a cached /metrics) hear of it, once the update is complete."""

    @functools.wraps(method)
    def wrapper(self: "ProberMetrics", *args: Any, **kwargs: Any) -> None:
        try:
            with self._lock:
                try:
                    method(self, *args, **kwargs)
                finally:  # an update that failed half-way may still have written
                    for section in self._touched:
                        section.version = next(self._versions)
                    self._touched.clear()
        finally:
            for listener in self._listeners:
                listener()

    return cast(Mutator, wrapper)


@dataclass(frozen=True)
class _Layouts:
    """What every scenario's families are built with."""

    scenario: tuple[float, ...]
    step: tuple[float, ...]
    page_timing: tuple[float, ...]
    extra: tuple[str, ...]


class _Section:
    """A registry holding part of the families, and the version /metrics compares.

    The version comes from one counter shared by all sections and is bumped after each
    change (under ProberMetrics' lock), so a body rendered from version v holds every
    change up to v, and a section created anew never repeats a version already seen.
    """

    def __init__(self, version: int) -> None:
        self.registry = CollectorRegistry()
        self.version = version


class _ScenarioFamilies(_Section):
    """Every family labelled by scenario, for one scenario (or none: the template)."""

    def __init__(self, version: int, layouts: "_Layouts") -> None:
        super().__init__(version)
        registry = self.registry
        extra = layouts.extra
        scenario = ("scenario", *extra)
        step = ("scenario", "step", *extra)

        def gauge(name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        self.runs = Counter(
            "prober_scenario_runs_total",
            "Runs by result: success, failure (a step failed), timeout (killed at the "
            "limit), error (the prober's own environment failed).",
            ("scenario", "result", *extra),
            registry=registry,
        )
        self.duration = Histogram(
            "prober_scenario_duration_seconds",
            "Duration of successful runs, steps only (browser launch excluded).",
            scenario,
            buckets=layouts.scenario,
            registry=registry,
        )
        self.last_duration = gauge(
            "prober_scenario_last_duration_seconds",
            "Duration of the last run that reached the target (not result=error).",
            scenario,
        )
        self.last_successful = gauge(
            "prober_scenario_last_successful",
            "1 if the last run that reached the target succeeded, else 0.",
            scenario,
        )
        self.last_run = gauge(
            "prober_scenario_last_run_timestamp_seconds",
            "Unix time the last run that reached the target ended.",
            scenario,
        )
        self.last_success = gauge(
            "prober_scenario_last_success_timestamp_seconds",
            "Unix time the last successful run ended.",
            scenario,
        )
        self.running = gauge(
            "prober_scenario_running", "1 while a run of the scenario executes.", scenario
        )
        self.interval = gauge(
            "prober_scenario_interval_seconds",
            "Configured pause between the end of one run and the start of the next.",
            scenario,
        )
        self.timeout = gauge(
            "prober_scenario_timeout_seconds", "Configured hard limit for one run.", scenario
        )
        self.step_duration = Histogram(
            "prober_step_duration_seconds",
            "Duration of steps that finished successfully.",
            step,
            buckets=layouts.step,
            registry=registry,
        )
        self.step_last_duration = gauge(
            "prober_step_last_duration_seconds",
            "Duration of the step in the last run where it finished successfully.",
            step,
        )
        self.step_failures = Counter(
            "prober_step_failures_total",
            "Failed steps by reason (timeout, navigation, selector, assertion, script, "
            "crash, config) and the component the step exercises.",
            ("scenario", "step", "reason", "component", *extra),
            registry=registry,
        )
        component = ("scenario", "component", *extra)
        self.component_duration = Histogram(
            "prober_component_duration_seconds",
            "Time a successful run spent in each component's steps; the scenario's own "
            "component also gets the time outside steps, so a run's components add up to "
            "prober_scenario_duration_seconds.",
            component,
            buckets=layouts.scenario,
            registry=registry,
        )
        self.component_last_duration = gauge(
            "prober_component_last_duration_seconds",
            "Time the last successful run spent in each component (adds up to that run's "
            "duration).",
            component,
        )
        self.component_last_successful = gauge(
            "prober_component_last_successful",
            "1 if the component's steps passed in the last run that reached them (not "
            "result=error), 0 if one failed: the alert that names whose part broke.",
            component,
        )
        self.retries = Counter(
            "prober_scenario_retries_total",
            "Attempts that retried a failed or timed-out run (retries: N). Each is also "
            "counted in prober_scenario_runs_total, so retries never hide flakiness.",
            scenario,
            registry=registry,
        )
        self.page_timing = Histogram(
            "prober_page_timing_seconds",
            "Per page loaded in the step, seconds from navigation start to each phase: ttfb, "
            "dom_content_loaded, load, first_contentful_paint, largest_contentful_paint.",
            ("scenario", "step", "phase", *extra),
            buckets=layouts.page_timing,
            registry=registry,
        )
        # A gauge, not a histogram: a probe loads the same pages every run, so the last
        # score is what a threshold alert needs, and a unitless 0..1+ score would need a
        # bucket layout of its own for every scenario and step.
        self.layout_shift = gauge(
            "prober_page_cumulative_layout_shift",
            "Cumulative layout shift of the worst page loaded in the step in the last run "
            "that loaded one.",
            step,
        )
        self.step_requests = Counter(
            "prober_step_requests_total",
            "Requests the page made during the step (documents, scripts, XHR, images...).",
            step,
            registry=registry,
        )
        self.step_failed_requests = Counter(
            "prober_step_failed_requests_total",
            "Requests of the step that failed, by kind: network (no answer: refused, DNS, "
            "TLS, reset), http_4xx, http_5xx. The run's result lists the first few.",
            ("scenario", "step", "kind", *extra),
            registry=registry,
        )
        self.certificate_expiry = gauge(
            "prober_tls_certificate_expiry_timestamp_seconds",
            "Unix time the server certificate of the host's HTTPS pages expires (notAfter), "
            "as last seen; main-frame documents only, at most 10 hosts per scenario.",
            ("scenario", "host", *extra),
        )
        self.artifact_failures = Counter(
            "prober_artifact_failures_total",
            "Runs whose failure artifacts could not be kept (disk full, read-only, ...).",
            scenario,
            registry=registry,
        )
        # In registration order: the order of the families in a whole collect.
        self.families: tuple[MetricWrapperBase, ...] = (
            self.runs,
            self.duration,
            self.last_duration,
            self.last_successful,
            self.last_run,
            self.last_success,
            self.running,
            self.interval,
            self.timeout,
            self.step_duration,
            self.step_last_duration,
            self.step_failures,
            self.component_duration,
            self.component_last_duration,
            self.component_last_successful,
            self.retries,
            self.page_timing,
            self.layout_shift,
            self.step_requests,
            self.step_failed_requests,
            self.certificate_expiry,
            self.artifact_failures,
        )


class _SharedFamilies(_Section):
    """The families that belong to the replica, not to a scenario."""

    def __init__(self, version: int, extra: tuple[str, ...]) -> None:
        super().__init__(version)
        registry = self.registry

        def gauge(name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        self.history_degraded = gauge(
            "prober_history_degraded",
            "1 if the run history database failed and history is kept in memory only.",
            extra,
        )
        self.history_unreadable = Counter(
            "prober_history_unreadable_rows_total",
            "Stored runs skipped because they cannot be read back (a bad row); each counted "
            "once. History itself still works: see prober_history_degraded for that.",
            extra,
            registry=registry,
        )
        self.build_info = gauge(
            "prober_build_info",
            "Always 1; versions of prober, Playwright and the browser.",
            ("version", "playwright_version", "browser_version", *extra),
        )
        self.reload_successful = gauge(
            "prober_config_last_reload_successful",
            "1 if the last load of the scenario file (start, change, SIGHUP) was applied; "
            "0 if it was rejected and the previous scenarios keep running.",
            extra,
        )
        self.reload_success = gauge(
            "prober_config_last_reload_success_timestamp_seconds",
            "Unix time the scenario file was last loaded and applied.",
            extra,
        )
        self.slot_recycles = Counter(
            "prober_slot_recycles_total",
            "Slots (context isolation: a worker with its driver and browser) replaced by a "
            "fresh one, by reason: timeout (a run hit its deadline), worker_exit (the worker "
            "died or broke the protocol), browser_crash, max_runs, max_age, max_memory. "
            "The first three should be rare; the last three are the slot limits at work.",
            ("reason", *extra),
            registry=registry,
        )


class _Everything:
    """The collector on the caller's registry: each family whole, all sections merged.

    For readers other than /metrics (get_sample_value in tests, an uncached handler);
    as costly as prometheus_client's own collect.
    """

    def __init__(self, metrics: "ProberMetrics") -> None:
        self._metrics = metrics

    def describe(self) -> Iterator[Metric]:
        metrics = self._metrics
        for family in metrics._template.families:
            yield from family.collect()
        yield from metrics._shared.registry.collect()

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        with metrics._lock:
            scenarios = list(metrics._scenarios.values())
        for index, family in enumerate(metrics._template.families):
            (merged,) = family.collect()  # no series: the template is never written to
            for section in scenarios:
                for part in section.families[index].collect():
                    merged.samples.extend(part.samples)
            yield merged
        yield from metrics._shared.registry.collect()


class ProberMetrics:
    """Metric families on a given registry; `location` becomes a constant label if set.

    Bucket layouts are passed in (their defaults are settings, prober.settings), so that
    this module depends on nothing but the run result.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        scenario_buckets: Sequence[float],
        step_buckets: Sequence[float],
        page_timing_buckets: Sequence[float],
        location: str | None = None,
    ) -> None:
        self._location = location
        # Fixed for the life of the histograms; a reload can only report a missing boundary.
        self.scenario_buckets = tuple(scenario_buckets)
        self.step_buckets = tuple(step_buckets)
        # Told after every update (prober.http.exposition subscribes its cache).
        self._listeners: list[Callable[[], None]] = []
        extra = ("location",) if location else ()
        self._layouts = _Layouts(
            self.scenario_buckets, self.step_buckets, tuple(page_timing_buckets), extra
        )
        self._versions = itertools.count()
        # Serialises updates (the history thread reports from its own) and their versions.
        self._lock = threading.RLock()
        # Sections an update in progress has written to.
        self._touched: set[_Section] = set()
        # Never written to: every family's header when no scenario is configured, and
        # a bad bucket layout fails here, at start.
        self._template = _ScenarioFamilies(next(self._versions), self._layouts)
        self._scenarios: dict[str, _ScenarioFamilies] = {}
        self._shared = _SharedFamilies(next(self._versions), extra)
        registry.register(_Everything(self))
        self._certificate_hosts: defaultdict[str, set[str]] = defaultdict(set)
        # Each scenario's own component (`component:`), which gets time outside steps.
        self._own_component: dict[str, str] = {}

    def sections(self) -> list[tuple[Hashable, int, CollectorRegistry]]:
        """(key, version, registry) of every section, the template first: rendered one
        by one and spliced family by family they make the whole exposition. A version
        changes after every update of its section, so a renderer may keep a section's
        body until then."""
        with self._lock:
            return [
                (("template",), self._template.version, self._template.registry),
                *(
                    (("scenario", name), section.version, section.registry)
                    for name, section in self._scenarios.items()
                ),
                (("shared",), self._shared.version, self._shared.registry),
            ]

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every update of the samples (from any thread)."""
        self._listeners.append(listener)

    def _labels(self, *values: str) -> tuple[str, ...]:
        return (*values, self._location) if self._location else values

    def _scenario(self, name: str) -> _ScenarioFamilies:
        """The scenario's families, for an update in progress (under `_changes`)."""
        section = self._scenarios.get(name)
        if section is None:
            section = self._scenarios[name] = _ScenarioFamilies(next(self._versions), self._layouts)
        self._touched.add(section)
        return section

    def _replica(self) -> _SharedFamilies:
        """The replica's own families, for an update in progress (under `_changes`)."""
        self._touched.add(self._shared)
        return self._shared

    @_changes
    def set_build_info(self, version: str, playwright_version: str, browser_version: str) -> None:
        self._replica().build_info.labels(
            *self._labels(version, playwright_version, browser_version)
        ).set(1)

    @_changes
    def set_history_degraded(self, degraded: bool) -> None:
        family = self._replica().history_degraded
        (family.labels(*self._labels()) if self._location else family).set(1 if degraded else 0)

    @_changes
    def history_row_unreadable(self) -> None:
        family = self._replica().history_unreadable
        (family.labels(*self._labels()) if self._location else family).inc()

    @_changes
    def expect_slot_recycles(self, reasons: Iterable[str]) -> None:
        """Export every reason at 0 from the start, so rate() and increase() see the first."""
        family = self._replica().slot_recycles
        for reason in reasons:
            family.labels(*self._labels(reason))

    @_changes
    def slot_recycled(self, reason: str) -> None:
        self._replica().slot_recycles.labels(*self._labels(reason)).inc()

    @_changes
    def configure(self, scenarios: Iterable[Scenario]) -> None:
        """Create each scenario's series up front, so rate() and alerts see zeros, not gaps."""
        for scenario in scenarios:
            families = self._scenario(scenario.name)
            labels = self._labels(scenario.name)
            self._own_component[scenario.name] = scenario.component
            families.interval.labels(*labels).set(scenario.interval)
            families.timeout.labels(*labels).set(scenario.timeout)
            # Created at 0, never reset: on a reload the old definition may still be running.
            families.running.labels(*labels)
            families.retries.labels(*labels)
            for outcome in Outcome:
                families.runs.labels(*self._labels(scenario.name, outcome.value))
            families.artifact_failures.labels(*labels)

    @_changes
    def config_loaded(self, ok: bool, at: float) -> None:
        """Record a load attempt of the scenario file; `at` only counts when it was applied."""
        families = self._replica()
        labels = self._labels()
        successful, success = families.reload_successful, families.reload_success
        (successful.labels(*labels) if labels else successful).set(1 if ok else 0)
        if ok:
            (success.labels(*labels) if labels else success).set(at)

    @_changes
    def forget(self, scenario: str) -> None:
        """Drop every series of a scenario removed from the file: alerts must not see it."""
        self._scenarios.pop(scenario, None)
        self._certificate_hosts.pop(scenario, None)
        self._own_component.pop(scenario, None)

    @_changes
    def run_started(self, scenario: str, run_id: str) -> None:
        """A run sink (prober.record.sinks): the run is in flight."""
        self._scenario(scenario).running.labels(*self._labels(scenario)).set(1)

    def run_ended(
        self, scenario: str, run_id: str, result: RunResult | None, ended_at: float
    ) -> None:
        """A run sink: not running any more, and the verdict, if there is one."""
        self._not_running(scenario)
        if result is not None:
            self.record(result, ended_at)

    @_changes
    def _not_running(self, scenario: str) -> None:
        self._scenario(scenario).running.labels(*self._labels(scenario)).set(0)

    @_changes
    def record(self, result: RunResult, ended_at: float) -> None:
        name = result.scenario
        families = self._scenario(name)
        labels = self._labels(name)
        exemplar = {"run_id": result.run_id}
        if result.trace_id:  # Grafana's exemplar link to Tempo reads `trace_id`
            exemplar["trace_id"] = result.trace_id
        families.runs.labels(*self._labels(name, result.result.value)).inc()
        if result.attempt > 1:
            families.retries.labels(*labels).inc()
        if result.artifact_error:
            families.artifact_failures.labels(*labels).inc()
        # Before the error return: a crash in a step is a step failure (reason=crash) too.
        if result.failed_step and result.reason:
            key = (result.failed_step, result.reason.value, self._component_of(result))
            families.step_failures.labels(*self._labels(name, *key)).inc()
        # Also for result=error: the requests were made, whatever broke afterwards.
        self._record_requests(families, result)
        self._record_certificates(families, result)
        if result.result is Outcome.ERROR:
            return
        families.last_duration.labels(*labels).set(result.duration_seconds)
        families.last_successful.labels(*labels).set(1 if result.ok else 0)
        families.last_run.labels(*labels).set(ended_at)
        for component, ok in component_outcomes(result).items():
            families.component_last_successful.labels(*self._labels(name, component)).set(int(ok))
        if result.ok:
            families.duration.labels(*labels).observe(result.duration_seconds, exemplar)
            families.last_success.labels(*labels).set(ended_at)
            self._record_components(families, result, exemplar)
        for step in result.steps:
            if step.ok:
                step_labels = self._labels(name, step.name)
                families.step_duration.labels(*step_labels).observe(step.duration_seconds, exemplar)
                families.step_last_duration.labels(*step_labels).set(step.duration_seconds)
        self._record_pages(families, result, exemplar)

    def _component_of(self, result: RunResult) -> str:
        """The component of the failed step; the scenario's own if no step result names it."""
        for step in reversed(result.steps):
            if step.name == result.failed_step:
                return step.component
        return self._own_component.get(result.scenario, DEFAULT_COMPONENT)

    def _record_components(
        self, families: _ScenarioFamilies, result: RunResult, exemplar: dict[str, str]
    ) -> None:
        own = self._own_component.get(result.scenario, DEFAULT_COMPONENT)
        for component, seconds in component_durations(result, own).items():
            labels = self._labels(result.scenario, component)
            families.component_duration.labels(*labels).observe(seconds, exemplar)
            families.component_last_duration.labels(*labels).set(seconds)

    def _record_certificates(self, families: _ScenarioFamilies, result: RunResult) -> None:
        """Hosts a successful run no longer visits are dropped: the flow left them.

        Only a successful run went through the whole flow; a failed one may have stopped
        before a host it still uses, whose certificate must stay watched.
        """
        hosts = self._certificate_hosts[result.scenario]
        seen = {certificate.host for certificate in result.certificates}
        if result.ok:
            for host in hosts - seen:
                families.certificate_expiry.remove(*self._labels(result.scenario, host))
            hosts &= seen
        for certificate in result.certificates:
            if certificate.host in hosts or len(hosts) < MAX_CERTIFICATE_HOSTS:
                hosts.add(certificate.host)
                labels = self._labels(result.scenario, certificate.host)
                families.certificate_expiry.labels(*labels).set(certificate.expires_at)

    def _record_requests(self, families: _ScenarioFamilies, result: RunResult) -> None:
        for counts in result.request_counts:
            families.step_requests.labels(*self._labels(result.scenario, counts.step)).inc(
                counts.requests
            )
            # Every kind, zeros included: rate() and ratios need the series to exist.
            for kind in REQUEST_FAILURES:
                families.step_failed_requests.labels(
                    *self._labels(result.scenario, counts.step, kind)
                ).inc(getattr(counts, kind))

    def _record_pages(
        self, families: _ScenarioFamilies, result: RunResult, exemplar: dict[str, str]
    ) -> None:
        worst_shift: dict[str, float] = {}
        for timing in result.page_timings:
            for phase, seconds in timing.phases.items():
                families.page_timing.labels(
                    *self._labels(result.scenario, timing.step, phase)
                ).observe(seconds, exemplar)
            if timing.cumulative_layout_shift is not None:
                worst_shift[timing.step] = max(
                    worst_shift.get(timing.step, 0.0), timing.cumulative_layout_shift
                )
        for step, shift in worst_shift.items():
            families.layout_shift.labels(*self._labels(result.scenario, step)).set(shift)
