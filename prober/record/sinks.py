"""Where runs go: every sink is told of every run through one interface, in one loop.

The scheduler reports each run to a `Recorder`, which stamps when it ended once and
hands it to each sink in turn: metrics (prober.record.metrics.ProberMetrics), history
(prober.record.history.History) and the log line (`RunLog`). A new destination is one
more sink in the list `prober serve` builds; nothing else is wired by hand.
"""

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from prober.contracts.config import Scenario
from prober.contracts.result import RunResult

log = logging.getLogger(__name__)


class RunSink(Protocol):
    """One destination of runs."""

    def run_started(self, scenario: str, run_id: str) -> None: ...

    def run_ended(
        self, scenario: str, run_id: str, result: RunResult | None, ended_at: float
    ) -> None:
        """`result` is None for a run cancelled at shutdown: no verdict on the target."""


class Recorder:
    """The scheduler's observer: tells every sink, in order; one failing sink stops none."""

    def __init__(self, sinks: Sequence[RunSink], clock: Callable[[], float] = time.time) -> None:
        self.sinks = list(sinks)
        self._clock = clock

    def run_started(self, scenario: Scenario, run_id: str) -> None:
        for sink in self.sinks:
            try:
                sink.run_started(scenario.name, run_id)
            except Exception:
                log.exception("run sink failed", extra={"sink": type(sink).__name__})

    def run_finished(self, scenario: Scenario, run_id: str, result: RunResult | None) -> None:
        # One end time for all: metrics and history must agree on when the run ended.
        ended_at = self._clock()
        for sink in self.sinks:
            try:
                sink.run_ended(scenario.name, run_id, result, ended_at)
            except Exception:
                log.exception("run sink failed", extra={"sink": type(sink).__name__})


class RunLog:
    """One log line per finished run: warning level unless it succeeded."""

    def run_started(self, scenario: str, run_id: str) -> None:
        pass  # the line is written when there is something to say

    def run_ended(
        self, scenario: str, run_id: str, result: RunResult | None, ended_at: float
    ) -> None:
        if result is None:
            return
        log.log(
            logging.INFO if result.ok else logging.WARNING,
            "run finished",
            extra={
                "scenario": result.scenario,
                "run_id": result.run_id,
                "result": result.result.value,
                "duration_seconds": round(result.duration_seconds, 3),
                "failed_step": result.failed_step,
                "reason": result.reason.value if result.reason else None,
                "error": result.error,
                "attempt": result.attempt,
            },
        )
