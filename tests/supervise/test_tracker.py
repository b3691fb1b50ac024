"""The tracker alone: events and an Ending in, one RunResult out, no process started."""

from prober.contracts.protocol import (
    MAX_CERTIFICATE_HOSTS,
    MAX_FAILED_REQUESTS,
    ArtifactFailed,
    ArtifactKept,
    BrowserLaunched,
    CertificateSeen,
    PageTimingReported,
    RequestFailed,
    RequestsCounted,
    RunEnded,
    RunFinished,
    StepFinished,
    StepStarted,
    encode,
)
from prober.contracts.result import (
    Certificate,
    FailedRequest,
    Outcome,
    PageTiming,
    Reason,
    StepRequests,
    StepResult,
)
from prober.contracts.secrets import MASK, Redactor
from prober.supervise.processes import MAX_LINE_BYTES, Ending
from prober.supervise.tracker import MAX_GARBAGE_LINES, RunTracker

SECRET = "s3cr3t-value"


def tracker() -> RunTracker:
    # Monotonic times in these tests: the run got its worker at 100.0.
    return RunTracker(
        scenario="login",
        run_id="r1",
        timeout=30.0,
        started_at=1_700_000_000.0,
        started=100.0,
        redact=Redactor([SECRET]),
    )


def launched(t: RunTracker, step: str, at: float) -> None:
    """The page came up at `at` and `step` started right away."""
    t.feed(BrowserLaunched(duration_seconds=0.1), now=at)
    t.feed(StepStarted(step=step), now=at)


def ending(how: str, at: float = 110.0, code: int | None = 0, stderr: bytes = b"") -> Ending:
    return Ending(how, at, code, stderr)  # type: ignore[arg-type]


def test_a_reported_run_keeps_the_workers_figures() -> None:
    t = tracker()
    t.feed(BrowserLaunched(duration_seconds=0.7), now=101.0)
    t.feed(StepStarted(step="home"), now=101.0)
    t.feed(StepFinished(step="home", duration_seconds=0.5, ok=True), now=101.5)
    t.feed(PageTimingReported(step="home", phases={"ttfb": 0.02}), now=101.6)
    t.feed(RunFinished(result=Outcome.SUCCESS, duration_seconds=0.55), now=101.6)
    assert t.finished is not None
    result = t.result(ending("done", at=102.0))

    assert (result.result, result.duration_seconds, result.error) == (Outcome.SUCCESS, 0.55, None)
    assert result.steps == (StepResult("home", 0.5, True),)
    assert result.browser_launch_seconds == 0.7
    assert result.page_timings == (PageTiming("home", {"ttfb": 0.02}),)
    assert (result.scenario, result.run_id, result.started_at) == ("login", "r1", 1_700_000_000.0)


def test_a_reported_failure_names_step_and_reason_and_is_masked() -> None:
    t = tracker()
    launched(t, "login", at=100.5)
    t.feed(StepFinished(step="login", duration_seconds=2.0, ok=False), now=102.5)
    t.feed(
        RunFinished(
            result=Outcome.FAILURE,
            duration_seconds=2.0,
            failed_step="login",
            reason=Reason.SELECTOR,
            error=f"no field for {SECRET}",
        ),
        now=102.5,
    )
    result = t.result(ending("done"))
    assert (result.failed_step, result.reason) == ("login", Reason.SELECTOR)
    assert result.error == f"no field for {MASK}"


def test_killed_at_the_timeout_blames_the_step_in_progress_until_the_kill() -> None:
    t = tracker()
    t.feed(BrowserLaunched(duration_seconds=1.0), now=101.0)
    t.feed(StepStarted(step="home"), now=101.0)
    t.feed(StepFinished(step="home", duration_seconds=0.5, ok=True), now=101.5)
    t.feed(StepStarted(step="search"), now=101.5)
    result = t.result(ending("timeout", at=130.0, code=None))

    assert result.result is Outcome.TIMEOUT
    assert (result.failed_step, result.reason) == ("search", Reason.TIMEOUT)
    assert result.error == "killed at the 30s timeout in step 'search'"
    assert result.steps == (StepResult("home", 0.5, True), StepResult("search", 28.5, False))
    # Steps only: from the page being ready to the kill, not the browser launch.
    assert result.duration_seconds == 29.0


def test_killed_while_saving_artifacts_blames_the_step_that_failed() -> None:
    t = tracker()
    launched(t, "slow_step", at=100.1)
    t.feed(StepFinished(step="slow_step", duration_seconds=28.0, ok=False), now=128.1)
    t.feed(ArtifactKept(name="r1-screenshot.png"), now=129.0)
    result = t.result(ending("timeout", at=130.0, code=None))
    assert (result.result, result.failed_step) == (Outcome.TIMEOUT, "slow_step")
    assert result.steps == (StepResult("slow_step", 28.0, False),)
    assert result.artifacts == ("r1-screenshot.png",)


def test_a_browser_that_never_came_up_is_our_error_not_the_targets() -> None:
    result = tracker().result(ending("timeout", at=130.0, code=None))
    assert result.result is Outcome.ERROR
    assert result.error == "browser did not start within the 30s timeout"
    assert result.duration_seconds == 30.0 and result.reason is None


def test_a_crash_mid_step_names_the_step_signal_and_masked_stderr() -> None:
    t = tracker()
    t.feed(BrowserLaunched(duration_seconds=0.1), now=100.1)
    t.feed(StepStarted(step="pay"), now=100.5)
    stderr = f"Traceback...\nRuntimeError: card {SECRET} declined\n".encode()
    result = t.result(ending("eof", at=101.0, code=-9, stderr=stderr))

    assert (result.result, result.failed_step, result.reason) == (
        Outcome.ERROR,
        "pay",
        Reason.CRASH,
    )
    assert result.error == (
        "worker exited with signal SIGKILL without a result; "
        f"stderr: Traceback... | RuntimeError: card {MASK} declined"
    )
    assert result.steps == (StepResult("pay", 0.5, False),)


def test_garbage_is_counted_and_quoted_masked() -> None:
    t = tracker()
    assert t.line(f"password is {SECRET}\n".encode(), now=100.0) == "more"
    assert t.line(b'{"event": "step_started"}\n', now=100.0) == "more"
    assert t.line(encode(StepStarted(step="home")), now=100.0) == "more"
    assert (t.garbage_lines, t.first_garbage) == (2, f"password is {MASK}")
    result = t.result(ending("eof", code=0))
    assert result.error == (
        f"worker exited with exit code 0 without a result; 2 unparseable line(s) on stdout, "
        f"first: 'password is {MASK}'; no output on stderr"
    )


def test_a_flood_of_garbage_stops_the_reading_at_the_limit() -> None:
    t = tracker()
    t.feed(StepStarted(step="home"), now=100.0)
    readings = [t.line(b"y" * 1000 + b"\n", now=100.0) for _ in range(MAX_GARBAGE_LINES)]
    assert readings[-1] == "stop" and set(readings[:-1]) == {"more"}
    flooded = t.result(ending("stopped"))
    assert flooded.error is not None
    assert flooded.error.startswith(f"worker wrote {MAX_GARBAGE_LINES} unparseable lines, first:")
    assert (flooded.reason, flooded.failed_step) == (Reason.CRASH, "home")


def test_an_overlong_line_is_a_crash() -> None:
    result = tracker().result(ending("overflow"))
    assert result.error == f"worker wrote a line longer than {MAX_LINE_BYTES} bytes"


def test_the_result_line_ends_the_reading() -> None:
    t = tracker()
    assert t.line(encode(RunFinished(result=Outcome.SUCCESS)), now=100.0) == "done"


def test_a_slot_workers_run_end_is_kept_and_changes_no_result() -> None:
    t = tracker()
    launched(t, "home", at=100.0)
    t.feed(StepFinished(step="home", duration_seconds=0.5, ok=True), now=100.5)
    t.feed(RunFinished(result=Outcome.SUCCESS, duration_seconds=0.5), now=100.6)
    assert t.line(encode(RunEnded(browser_crashed=True)), now=100.7) == "done"

    assert t.ended == RunEnded(browser_crashed=True)
    result = t.result(ending("done"))
    assert (result.result, result.duration_seconds) == (Outcome.SUCCESS, 0.5)


def test_page_timings_of_steps_the_run_never_announced_are_dropped() -> None:
    t = tracker()
    t.feed(StepStarted(step="home"), now=100.0)
    t.feed(PageTimingReported(step="home", phases={"load": 0.1}), now=100.1)
    t.feed(PageTimingReported(step="not_a_step", phases={"load": 0.1}), now=100.1)
    assert t.page_timings == [PageTiming("home", {"load": 0.1})]


def test_request_counts_are_the_latest_per_step_and_failures_are_capped() -> None:
    t = tracker()
    launched(t, "home", at=100.0)
    t.feed(RequestsCounted(step="home", requests=3), now=100.1)
    t.feed(RequestsCounted(step="home", requests=4, http_5xx=1), now=100.2)
    t.feed(RequestsCounted(step="not_a_step", requests=9), now=100.2)
    for n in range(MAX_FAILED_REQUESTS + 5):
        t.feed(RequestFailed(step="home", method="GET", url=f"/{n}", status=500), now=100.3)
    t.feed(RequestFailed(step="not_a_step", method="GET", url="/", status=500), now=100.3)
    # Killed before the run's end: what was reported so far is kept.
    result = t.result(ending("timeout"))
    assert result.request_counts == (StepRequests("home", 4, http_5xx=1),)
    assert len(result.failed_requests) == MAX_FAILED_REQUESTS
    assert result.failed_requests[0] == FailedRequest("home", "GET", "/0", status=500)


def test_certificate_hosts_are_capped_and_never_show_a_secret() -> None:
    t = tracker()
    launched(t, "home", at=100.0)
    t.feed(CertificateSeen(host=f"{SECRET}.example", expires_at=2e9), now=100.1)
    for n in range(MAX_CERTIFICATE_HOSTS + 2):
        t.feed(CertificateSeen(host=f"h{n}.example", expires_at=2e9 + n), now=100.2)
    t.feed(CertificateSeen(host="h0.example", expires_at=3e9), now=100.3)  # a later read
    result = t.result(ending("timeout"))
    assert [c.host for c in result.certificates] == [
        f"h{n}.example" for n in range(MAX_CERTIFICATE_HOSTS)
    ]
    assert result.certificates[0] == Certificate("h0.example", 3e9)


def test_artifacts_as_the_store_found_them_replace_what_the_worker_claimed() -> None:
    t = tracker()
    t.feed(ArtifactKept(name="r1-screenshot.png"), now=100.0)
    t.feed(ArtifactKept(name="other-run-trace.zip"), now=100.0)
    t.feed(ArtifactFailed(error=f"disk full at {SECRET}"), now=100.0)
    t.feed(ArtifactFailed(error="second problem"), now=100.0)
    assert t.artifact_error == f"disk full at {SECRET}"  # the first problem is kept
    t.kept_artifacts(("r1-screenshot.png",), t.artifact_error)
    t.feed(RunFinished(result=Outcome.FAILURE), now=100.0)
    result = t.result(ending("done"))
    assert result.artifacts == ("r1-screenshot.png",)
    assert result.artifact_error == f"disk full at {MASK}"


def test_a_worker_that_could_not_start_is_an_error() -> None:
    result = tracker().not_started("cannot start worker: [Errno 2] No such file", at=100.0)
    assert (result.result, result.error) == (
        Outcome.ERROR,
        "cannot start worker: [Errno 2] No such file",
    )
    assert result.duration_seconds == 0.0 and result.steps == ()
