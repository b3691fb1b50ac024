"""The Recorder: every sink told of every run, in order, with one end time."""

import logging

import pytest

from prober.contracts.config import Scenario
from prober.contracts.result import Outcome, RunResult
from prober.record.sinks import Recorder, RunLog

SCENARIO = Scenario.model_validate(
    {
        "name": "login",
        "interval": "1m",
        "timeout": "30s",
        "steps": [{"name": "home", "actions": [{"goto": "http://127.0.0.1/"}]}],
    }
)
RESULT = RunResult(
    scenario="login", run_id="r1", result=Outcome.FAILURE, duration_seconds=1.25, started_at=1.0
)


class Notes:
    def __init__(self, name: str, log: list[tuple[object, ...]], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    def run_started(self, scenario: str, run_id: str) -> None:
        self.log.append((self.name, "started", scenario, run_id))
        if self.fail:
            raise RuntimeError("sink is broken")

    def run_ended(
        self, scenario: str, run_id: str, result: RunResult | None, ended_at: float
    ) -> None:
        self.log.append((self.name, "ended", scenario, run_id, result, ended_at))
        if self.fail:
            raise RuntimeError("sink is broken")


def test_every_sink_hears_every_run_in_order_even_past_a_failing_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[tuple[object, ...]] = []
    recorder = Recorder(
        [Notes("a", log), Notes("broken", log, fail=True), Notes("b", log)], clock=lambda: 42.0
    )
    recorder.run_started(SCENARIO, "r1")
    recorder.run_finished(SCENARIO, "r1", RESULT)
    recorder.run_finished(SCENARIO, "r2", None)

    assert log == [
        ("a", "started", "login", "r1"),
        ("broken", "started", "login", "r1"),
        ("b", "started", "login", "r1"),
        ("a", "ended", "login", "r1", RESULT, 42.0),
        ("broken", "ended", "login", "r1", RESULT, 42.0),
        ("b", "ended", "login", "r1", RESULT, 42.0),
        ("a", "ended", "login", "r2", None, 42.0),
        ("broken", "ended", "login", "r2", None, 42.0),
        ("b", "ended", "login", "r2", None, 42.0),
    ]
    assert caplog.text.count("run sink failed") == 3


def test_the_log_line_says_what_the_run_came_to(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="prober.record.sinks"):
        RunLog().run_ended("login", "r1", RESULT, 42.0)
        RunLog().run_ended("login", "r2", None, 42.0)  # cancelled at shutdown: no verdict
    (record,) = caplog.records
    assert (record.levelno, record.getMessage()) == (logging.WARNING, "run finished")
    assert (record.run_id, record.result, record.duration_seconds) == ("r1", "failure", 1.25)  # type: ignore[attr-defined]
