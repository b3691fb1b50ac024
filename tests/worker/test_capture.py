"""Failure artifacts with a real Chromium: screenshot, trace and console, scrubbed of secrets."""

import json
import logging
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from prober.contracts.artifacts import STAGING
from prober.contracts.config import Config, load_config
from prober.contracts.result import Outcome, Reason, RunResult
from prober.record.metrics import ProberMetrics
from prober.settings import (
    DEFAULT_PAGE_TIMING_BUCKETS,
    DEFAULT_SCENARIO_BUCKETS,
    DEFAULT_STEP_BUCKETS,
)
from prober.supervise.artifacts import ArtifactRetention, ArtifactStore
from prober.supervise.runner import WorkerRunner
from tests.artifact_checks import count_color, leaks, png_size
from tests.conftest import PASSWORD, SIGN_IN_STEPS, USER

Load = Callable[[Path], Config]
MakeRunner = Callable[..., WorkerRunner]
WriteConfig = Callable[[str], Path]
MASK_COLOR = (255, 0, 255)  # Playwright's default for `mask=`

# Fills the sign-in form, leaves a console error and an uncaught page error that both
# quote the password, then fails on the form: the screenshot shows a filled password field.
FAILING_ON_FORM = """
async def run(page, step, params):
    async with step("form_filled"):
        await page.goto(params["url"] + "/idp/authorize")
        await page.locator("input[name=login]").fill(params["user"])
        await page.locator("input[name=password]").fill(params["password"])
        await page.evaluate("(p) => console.error('rejected ' + p)", params["password"])
        async with page.expect_event("pageerror"):
            await page.add_script_tag(content="throw new Error('boom ' + %r)" % params["password"])
        raise AssertionError("the form is still there")
"""


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "data" / "artifacts", ArtifactRetention(3600.0, 1 << 30))


def scenario_file(write_config: WriteConfig, body: str, timeout: str = "20s") -> Path:
    return write_config(
        f"""
    scenarios:
      - name: probe
        interval: 60s
        timeout: {timeout}
    """
        + body
    )


FAIL_AFTER_SIGN_IN = (
    SIGN_IN_STEPS
    + """
          - name: report_opened
            actions:
              - goto: "${APP_URL}/error"
"""
)


def secrets_of(config: Config) -> tuple[str, ...]:
    assert {USER, PASSWORD} <= set(config.secrets)
    return config.secrets


async def test_failed_run_keeps_screenshot_trace_and_console_without_secrets(
    write_config: WriteConfig, load: Load, make_runner: MakeRunner, store: ArtifactStore
) -> None:
    config = load(scenario_file(write_config, FAIL_AFTER_SIGN_IN))
    result = await make_runner(config, artifacts=store).run(config.scenario("probe"))

    assert result.result is Outcome.FAILURE, result.error
    assert (result.failed_step, result.reason) == ("report_opened", Reason.NAVIGATION)
    run = result.run_id
    assert sorted(result.artifacts) == [
        f"{run}-console.json",
        f"{run}-network.har",
        f"{run}-screenshot.png",
        f"{run}-trace.zip",
    ]
    assert result.artifact_error is None
    files = {name: store.directory / name for name in result.artifacts}

    assert png_size(files[f"{run}-screenshot.png"].read_bytes()) == (1280, 720)
    with zipfile.ZipFile(files[f"{run}-trace.zip"]) as trace:
        assert trace.testzip() is None
        names = trace.namelist()
        assert {"trace.trace", "trace.network"} <= set(names)
        # Scrubbing rewrote text inside JSON lines; the viewer needs them to stay JSON.
        events = [json.loads(line) for line in trace.read("trace.trace").splitlines()]
        network = [json.loads(line) for line in trace.read("trace.network").splitlines()]
        assert any(e.get("method") == "fill" for e in events)
        login_post = [
            n for n in network if n.get("snapshot", {}).get("request", {}).get("method") == "POST"
        ]
        assert login_post, "the trace should hold the login POST"
        body_file = login_post[0]["snapshot"]["request"]["postData"]["_file"]
        assert body_file in names, "a renamed resource must still be referenced correctly"
        assert b"login=********&password=********" in trace.read(body_file)
    console = json.loads(files[f"{run}-console.json"].read_bytes())
    assert isinstance(console, list)
    entries = json.loads(files[f"{run}-network.har"].read_bytes())["log"]["entries"]
    (post,) = [e["request"] for e in entries if e["request"]["method"] == "POST"]
    assert post["url"].endswith("/idp/login") and not post["postData"]["text"], post
    assert any(e["response"]["status"] == 500 for e in entries), "the failing request"
    for entry in entries:
        for message in (entry["request"], entry["response"]):
            for header in message["headers"]:
                if header["name"].lower() in ("cookie", "set-cookie", "authorization"):
                    assert header["value"] == "********", header
    for path in files.values():
        assert not leaks(path, secrets_of(config)), leaks(path, secrets_of(config))
    assert not (store.directory / STAGING / run).exists()


async def test_screenshot_masks_password_and_console_keeps_errors_redacted(
    write_config: WriteConfig,
    load: Load,
    make_runner: MakeRunner,
    store: ArtifactStore,
    tmp_path: Path,
) -> None:
    (tmp_path / "form_checks.py").write_text(FAILING_ON_FORM)
    config = load(
        scenario_file(
            write_config,
            """
        script: "form_checks:run"
        params: {url: "${APP_URL}", user: "${PROBE_USER}", password: "${PROBE_PASSWORD}"}
            """,
        )
    )
    result = await make_runner(config, artifacts=store).run(config.scenario("probe"))

    assert result.result is Outcome.FAILURE, result.error
    run = result.run_id
    screenshot = (store.directory / f"{run}-screenshot.png").read_bytes()
    assert count_color(screenshot, MASK_COLOR) > 500, "the password field should be masked"
    console = json.loads((store.directory / f"{run}-console.json").read_bytes())
    texts = [(entry["type"], entry["text"]) for entry in console]
    assert ("console.error", "rejected ********") in texts
    assert any(kind == "pageerror" and "boom ********" in text for kind, text in texts)
    for name in result.artifacts:
        path = store.directory / name
        assert not leaks(path, secrets_of(config)), leaks(path, secrets_of(config))


async def test_timed_out_run_still_leaves_a_screenshot(
    write_config: WriteConfig, load: Load, make_runner: MakeRunner, store: ArtifactStore
) -> None:
    config = load(
        scenario_file(
            write_config,
            """
        steps:
          - name: dashboard_loaded
            actions:
              - goto: "${APP_URL}/never"
              - wait_for: "text=Dashboard"
            """,
            timeout="10s",
        )
    )
    result = await make_runner(config, artifacts=store).run(config.scenario("probe"))

    assert result.result is Outcome.TIMEOUT, result.error
    assert result.failed_step == "dashboard_loaded"
    screenshot = f"{result.run_id}-screenshot.png"
    assert screenshot in result.artifacts
    assert png_size((store.directory / screenshot).read_bytes()) == (1280, 720)
    # The worker reported by itself inside the margin, rather than being killed.
    assert result.error == "run deadline reached"


async def test_successful_run_keeps_nothing_unless_traces_are_asked_for(
    write_config: WriteConfig, load: Load, make_runner: MakeRunner, store: ArtifactStore
) -> None:
    config = load(scenario_file(write_config, SIGN_IN_STEPS))
    plain = await make_runner(config, artifacts=store).run(config.scenario("probe"))
    traced = await make_runner(config, artifacts=store, trace_on_success=True).run(
        config.scenario("probe")
    )

    assert plain.result is traced.result is Outcome.SUCCESS
    assert plain.artifacts == ()
    assert traced.artifacts == (f"{traced.run_id}-trace.zip",)
    assert not leaks(store.directory / traced.artifacts[0], secrets_of(config))
    assert sorted(p.name for p in store.directory.iterdir()) == [STAGING, traced.artifacts[0]]
    assert list((store.directory / STAGING).iterdir()) == []


async def test_unusable_data_dir_is_reported_and_counted_but_never_stops_probing(
    write_config: WriteConfig,
    load: Load,
    make_runner: MakeRunner,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A file where the directory should be: every write fails, as on a broken volume.
    (tmp_path / "data").write_text("not a directory")
    store = ArtifactStore(tmp_path / "data" / "artifacts", ArtifactRetention(3600.0, 1 << 30))
    config = load(scenario_file(write_config, FAIL_AFTER_SIGN_IN))
    runner = make_runner(config, artifacts=store)
    caplog.set_level(logging.WARNING, logger="prober.supervise.artifacts")

    result = await runner.run(config.scenario("probe"))

    assert result.result is Outcome.FAILURE
    assert result.failed_step == "report_opened"
    assert result.artifacts == ()
    assert result.artifact_error and "Not a directory" in result.artifact_error
    assert [r.message for r in caplog.records] == [
        "cannot keep failure artifacts; probing continues without them"
    ]
    registry = CollectorRegistry()
    metrics = ProberMetrics(
        registry, DEFAULT_SCENARIO_BUCKETS, DEFAULT_STEP_BUCKETS, DEFAULT_PAGE_TIMING_BUCKETS
    )
    metrics.record(result, ended_at=0.0)
    failures = registry.get_sample_value("prober_artifact_failures_total", {"scenario": "probe"})
    assert failures == 1.0


@pytest.fixture
def small_mount(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount tmpfs file systems (read-only, tiny) under tmp_path; skipped without root."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mount{len(mounted)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    if sys.platform != "linux":
        pytest.skip("tmpfs mounts are Linux only")
    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=True)


@pytest.mark.parametrize(
    ("options", "error"),
    [("ro,size=1m", "Read-only file system"), ("size=24k", "No space left on device")],
    ids=["read-only", "full"],
)
async def test_read_only_or_full_disk_does_not_change_the_verdict(
    write_config: WriteConfig,
    load: Load,
    make_runner: MakeRunner,
    small_mount: Callable[[str], Path],
    options: str,
    error: str,
) -> None:
    store = ArtifactStore(small_mount(options) / "artifacts", ArtifactRetention(3600.0, 1 << 30))
    config = load(scenario_file(write_config, FAIL_AFTER_SIGN_IN))

    result = await make_runner(config, artifacts=store).run(config.scenario("probe"))

    assert result.result is Outcome.FAILURE
    assert [s.ok for s in result.steps] == [True, True, True, True, False]
    assert result.artifact_error and error in result.artifact_error
    # Whatever was renamed into place before the disk filled up is complete and listed.
    assert all((store.directory / name).is_file() for name in result.artifacts)


def test_run_result_json_lists_artifacts_and_their_problem() -> None:
    result = RunResult(
        scenario="probe",
        run_id="r1",
        result=Outcome.FAILURE,
        duration_seconds=1.0,
        started_at=0.0,
        artifacts=("r1-screenshot.png",),
        artifact_error="OSError: [Errno 28] No space left on device",
    )
    data = result.to_json()
    assert data["artifacts"] == ["r1-screenshot.png"]
    assert data["artifact_error"].endswith("No space left on device")


async def test_wedged_page_still_times_out_in_its_step(
    write_config: WriteConfig, make_runner: MakeRunner, store: ArtifactStore
) -> None:
    """A renderer stuck in a script cannot be screenshot; the run still ends cleanly."""
    config = load_config(
        scenario_file(
            write_config,
            """
        steps:
          - name: busy_page
            actions:
              - goto: "data:text/html,<p>busy</p><script>for (;;) {}</script>"
            """,
            timeout="10s",
        )
    )
    result = await make_runner(config, artifacts=store).run(config.scenario("probe"))

    assert result.result is Outcome.TIMEOUT, result.error
    assert (result.failed_step, result.reason) == ("busy_page", Reason.TIMEOUT)
    assert f"{result.run_id}-screenshot.png" not in result.artifacts
    assert not (store.directory / STAGING / result.run_id).exists()
