"""RunResult's one serialisation: the run-result JSON of DESIGN.md, and back."""

import json

from prober.contracts.result import (
    Outcome,
    PageTiming,
    Reason,
    RunResult,
    StepRequests,
    StepResult,
    new_run_id,
)

# DESIGN.md's example with every landed addition, in the order `prober run` prints it.
DOCUMENTED = {
    "scenario": "sso-login",
    "run_id": "20261124T070512Z-3f9a1c2b",
    "result": "failure",
    "duration_seconds": 2.41,
    "started_at": 1_764_000_000.5,
    "steps": [
        {"name": "app_page_loaded", "duration_seconds": 0.52, "ok": True, "component": "app"},
        {"name": "idp_page_loaded", "duration_seconds": 1.89, "ok": False, "component": "idp"},
    ],
    "failed_step": "idp_page_loaded",
    "reason": "selector",
    "error": "TimeoutError: locator('input[name=login]')",
    "browser_launch_seconds": 0.4,
    "artifacts": ["20261124T070512Z-3f9a1c2b-screenshot.png"],
    "attempt": 2,
    "artifact_error": None,
    "page_timings": [
        {"step": "app_page_loaded", "phases": {"ttfb": 0.02}, "cumulative_layout_shift": 0.0}
    ],
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "request_counts": [
        {"step": "app_page_loaded", "requests": 7, "network": 0, "http_4xx": 0, "http_5xx": 1}
    ],
    "failed_requests": [
        {
            "step": "app_page_loaded",
            "method": "GET",
            "url": "https://app.example/api/me?session=********",
            "status": 500,
            "error": None,
        }
    ],
    "certificates": [{"host": "idp.example.com", "expires_at": 1_790_000_000.0}],
}


def test_the_documented_json_reads_into_a_run_result_and_back_unchanged() -> None:
    result = RunResult.from_json(DOCUMENTED)
    assert (result.result, result.reason) == (Outcome.FAILURE, Reason.SELECTOR)
    assert result.steps[1] == StepResult("idp_page_loaded", 1.89, False, "idp")
    assert result.page_timings == (PageTiming("app_page_loaded", {"ttfb": 0.02}, 0.0),)
    assert result.request_counts == (StepRequests("app_page_loaded", 7, http_5xx=1),)
    assert result.failed_requests[0].status == 500
    data = result.to_json()
    assert list(data) == list(DOCUMENTED) and data == DOCUMENTED
    assert json.loads(json.dumps(data)) == data  # JSON types only


def test_a_field_an_older_writer_lacked_gets_its_default() -> None:
    old = {key: DOCUMENTED[key] for key in list(DOCUMENTED)[:5]}
    result = RunResult.from_json(old)
    assert (result.steps, result.attempt, result.page_timings) == ((), 1, ())
    assert result.trace_id is None  # recorded before trace ids
    step = {"name": "app_page_loaded", "duration_seconds": 0.52, "ok": True}  # before components
    assert RunResult.from_json({**old, "steps": [step]}).steps[0].component == "app"


def test_run_ids_differ_and_have_the_documented_shape() -> None:
    first, second = new_run_id(), new_run_id()
    assert first != second and len(first) == len("20261124T070512Z-3f9a1c2b")


def test_a_trace_id_that_is_not_32_lowercase_hex_is_refused() -> None:
    for bad in ("4BF92F3577B34DA6A3CE929D0E0E4736", "00" * 15, "x" * 32, "0" * 32):
        try:
            RunResult.from_json({**DOCUMENTED, "trace_id": bad})
        except ValueError as exc:
            assert "trace_id" in str(exc)
        else:
            raise AssertionError(f"{bad!r} accepted")
