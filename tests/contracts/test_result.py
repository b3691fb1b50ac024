"""RunResult's one serialisation: the run-result JSON of DESIGN.md, and back."""

import json

from prober.contracts.result import Outcome, PageTiming, Reason, RunResult, StepResult, new_run_id

RESULT = RunResult(
    scenario="sso-login",
    run_id="20261124T070512Z-3f9a1c2b",
    result=Outcome.FAILURE,
    duration_seconds=2.41,
    started_at=1_764_000_000.5,
    steps=(StepResult("app_page_loaded", 0.52, True), StepResult("idp_page_loaded", 1.89, False)),
    failed_step="idp_page_loaded",
    reason=Reason.SELECTOR,
    error="TimeoutError: locator('input[name=login]')",
    browser_launch_seconds=0.4,
    artifacts=("20261124T070512Z-3f9a1c2b-screenshot.png",),
    attempt=2,
    artifact_error=None,
    page_timings=(PageTiming("app_page_loaded", {"ttfb": 0.02}, cumulative_layout_shift=0.0),),
)


def test_the_json_is_the_documented_one() -> None:
    data = RESULT.to_json()
    assert list(data)[:7] == [
        "scenario",
        "run_id",
        "result",
        "duration_seconds",
        "started_at",
        "steps",
        "failed_step",
    ]
    assert data["result"] == "failure" and data["reason"] == "selector"
    assert data["steps"][0] == {"name": "app_page_loaded", "duration_seconds": 0.52, "ok": True}
    assert data["page_timings"] == [
        {"step": "app_page_loaded", "phases": {"ttfb": 0.02}, "cumulative_layout_shift": 0.0}
    ]
    assert json.loads(json.dumps(data)) == data  # JSON types only


def test_from_json_reverses_to_json_and_defaults_what_an_older_writer_lacked() -> None:
    assert RunResult.from_json(json.loads(json.dumps(RESULT.to_json()))) == RESULT
    old = {
        "scenario": "sso-login",
        "run_id": "r1",
        "result": "success",
        "duration_seconds": 1.0,
        "started_at": 0.0,
    }
    assert RunResult.from_json(old) == RunResult("sso-login", "r1", Outcome.SUCCESS, 1.0, 0.0)


def test_run_ids_differ_and_have_the_documented_shape() -> None:
    first, second = new_run_id(), new_run_id()
    assert first != second and len(first) == len("20261124T070512Z-3f9a1c2b")
