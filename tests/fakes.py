"""Stand-ins and recorders for tests where the browser is not the point."""

import asyncio
import random
import time
from collections.abc import Iterable

from prober.contracts.config import Scenario
from prober.contracts.result import Outcome, Reason, RunResult, StepResult
from prober.record.history import History
from prober.record.metrics import ProberMetrics
from prober.record.sinks import Recorder, RunLog


class FakeRun:
    """Returns the scripted outcomes in order (the last one repeats).

    With `hold(n)`, call n (0-based) sets `held` and waits for `release` before finishing.
    """

    def __init__(self, outcomes: Iterable[Outcome] = (Outcome.SUCCESS,), seconds: float = 0.0):
        self.outcomes = list(outcomes)
        self.seconds = seconds
        self.calls: list[str] = []
        self.hold_call: int | None = None
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    def hold(self, call: int) -> None:
        self.hold_call = call

    async def __call__(self, scenario: Scenario, run_id: str) -> RunResult:
        outcome = self.outcomes[min(len(self.calls), len(self.outcomes) - 1)]
        started = time.time()
        if len(self.calls) == self.hold_call:
            self.held.set()
            await self.release.wait()
        self.calls.append(run_id)
        await asyncio.sleep(self.seconds)
        failed = outcome is not Outcome.SUCCESS
        return RunResult(
            scenario=scenario.name,
            run_id=run_id,
            result=outcome,
            duration_seconds=0.2 + len(self.calls) * 0.1,
            started_at=started,
            steps=(StepResult("home", 0.1, True), StepResult("login", 0.1, not failed)),
            failed_step="login" if failed else None,
            reason=Reason.SELECTOR if failed else None,
            error="login button not found" if failed else None,
            artifacts=(f"{run_id}-screenshot.png", f"{run_id}-trace.zip") if failed else (),
        )


class NoScheduledRuns(random.Random):
    """Start offsets at their maximum (the interval): only the test's own runs happen."""

    def uniform(self, a: float, b: float) -> float:
        return b


class CountingRecorder(Recorder):
    """The real sinks, plus every verdict in order, to prove no run goes unrecorded."""

    def __init__(self, metrics: ProberMetrics, history: History) -> None:
        super().__init__([metrics, history, RunLog()])
        self.finished: list[RunResult | None] = []

    def run_finished(self, scenario: Scenario, run_id: str, result: RunResult | None) -> None:
        super().run_finished(scenario, run_id, result)
        self.finished.append(result)
