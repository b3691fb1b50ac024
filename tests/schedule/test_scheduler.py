"""Scheduler behaviour with a fake runner: spacing, non-overlap, isolation, limits, stop."""

import asyncio
import itertools
import random
import time
from dataclasses import dataclass, field

import pytest

from prober.contracts.config import Scenario
from prober.contracts.result import Outcome, RunResult
from prober.schedule.scheduler import ScenarioBusyError, Scheduler


def scenario(name: str, interval: str = "200ms", timeout: str = "5s") -> Scenario:
    return Scenario.model_validate(
        {
            "name": name,
            "interval": interval,
            "timeout": timeout,
            "steps": [{"name": "s", "actions": [{"goto": "http://127.0.0.1:9/"}]}],
        }
    )


@dataclass
class FakeRunner:
    """Records start/end times; behaviour per scenario name."""

    duration: float = 0.1
    raising: set[str] = field(default_factory=set)
    hanging: set[str] = field(default_factory=set)
    spans: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    active: int = 0
    max_active: int = 0
    cancelled: int = 0

    async def __call__(self, scenario: Scenario, run_id: str) -> RunResult:
        started = time.monotonic()
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if scenario.name in self.raising:
                raise RuntimeError("runner bug")
            await asyncio.sleep(3600 if scenario.name in self.hanging else self.duration)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.active -= 1
            self.spans.setdefault(scenario.name, []).append((started, time.monotonic()))
        return RunResult(scenario.name, run_id, Outcome.SUCCESS, self.duration, time.time())


@dataclass
class Observer:
    started: list[str] = field(default_factory=list)
    finished: list[tuple[str, RunResult | None]] = field(default_factory=list)

    def run_started(self, scenario: Scenario, run_id: str) -> None:
        self.started.append(scenario.name)

    def run_finished(self, scenario: Scenario, run_id: str, result: RunResult | None) -> None:
        self.finished.append((scenario.name, result))


def make(runner: FakeRunner, observer: Observer, concurrency: int = 4) -> Scheduler:
    return Scheduler(runner, observer, concurrency, max_start_offset=0.05, rng=random.Random(1))


async def test_runs_never_overlap_and_wait_the_interval_after_each_end() -> None:
    runner, observer = FakeRunner(duration=0.15), Observer()
    scheduler = make(runner, observer)
    scheduler.start([scenario("a", interval="200ms")])
    await asyncio.sleep(1.6)
    await scheduler.stop(grace=5)

    spans = runner.spans["a"]
    assert len(spans) >= 3
    for (_, previous_end), (next_start, _) in itertools.pairwise(spans):
        gap = next_start - previous_end
        assert gap >= 0.2 - 0.005, "next run started before interval after the previous end"
    assert runner.max_active == 1


async def test_a_raising_or_hanging_scenario_does_not_stop_the_others() -> None:
    runner = FakeRunner(duration=0.05, raising={"bad"}, hanging={"stuck"})
    observer = Observer()
    scheduler = make(runner, observer)
    scheduler.start([scenario("bad"), scenario("stuck"), scenario("good")])
    await asyncio.sleep(1.5)
    assert scheduler.healthy()
    await scheduler.stop(grace=0.1)

    good = [r for name, r in observer.finished if name == "good"]
    bad = [r for name, r in observer.finished if name == "bad"]
    assert len(good) >= 3 and all(r and r.result is Outcome.SUCCESS for r in good)
    # A runner bug becomes result=error and the loop carries on.
    assert len(bad) >= 3 and all(r and r.result is Outcome.ERROR for r in bad)
    # The hung run was cancelled at stop and reported without a verdict.
    assert ("stuck", None) in observer.finished
    assert runner.cancelled == 1


async def test_concurrency_limit_queues_runs() -> None:
    runner, observer = FakeRunner(duration=0.2), Observer()
    scheduler = make(runner, observer, concurrency=2)
    scheduler.start([scenario(f"s{i}", interval="10ms") for i in range(5)])
    await asyncio.sleep(1.5)
    await scheduler.stop(grace=5)

    assert runner.max_active == 2
    assert len(observer.finished) >= 8  # queued runs still ran


async def test_stop_waits_for_in_flight_runs_within_grace() -> None:
    runner, observer = FakeRunner(duration=0.6), Observer()
    scheduler = make(runner, observer)
    scheduler.start([scenario("a", interval="1h")])
    await asyncio.sleep(0.2)  # the first run is in flight
    await scheduler.stop(grace=5)

    assert runner.cancelled == 0
    assert [name for name, result in observer.finished if result is not None] == ["a"]
    assert observer.started == ["a"]


async def test_on_demand_run_is_refused_while_one_is_in_flight() -> None:
    runner, observer = FakeRunner(duration=0.5), Observer()
    scheduler = make(runner, observer)
    scheduler.start([scenario("a", interval="1h")])
    await asyncio.sleep(0.2)
    assert scheduler.is_running("a")
    with pytest.raises(ScenarioBusyError):
        await scheduler.run_now("a")
    await asyncio.sleep(0.5)
    result = await scheduler.run_now("a")
    assert result is not None and result.result is Outcome.SUCCESS
    await scheduler.stop(grace=1)
    assert runner.max_active == 1


async def test_start_offsets_spread_scenarios() -> None:
    runner, observer = FakeRunner(duration=0.01), Observer()
    scheduler = Scheduler(runner, observer, 10, max_start_offset=1.0, rng=random.Random(7))
    scheduler.start([scenario(f"s{i}", interval="1h") for i in range(6)])
    await asyncio.sleep(1.3)
    await scheduler.stop(grace=1)

    starts = sorted(spans[0][0] for spans in runner.spans.values())
    assert len(starts) == 6
    assert starts[-1] - starts[0] > 0.2  # not all at once
