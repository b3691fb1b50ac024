"""WorkerRunner with a real Chromium against the real target on 127.0.0.1."""

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from prober.contracts.config import Config
from prober.contracts.result import Outcome, Reason
from prober.supervise.runner import WorkerRunner
from tests.conftest import PASSWORD, SIGN_IN_STEP_NAMES, Target, sign_in_scenario

Load = Callable[[Path], Config]
MakeRunner = Callable[..., WorkerRunner]


def sign_in(timeout: str = "20s") -> str:
    return "scenarios:\n" + sign_in_scenario(timeout=timeout)


async def test_sign_in_flow_succeeds_with_every_step_timed(
    write_config: Callable[[str], Path], load: Load, make_runner: MakeRunner
) -> None:
    config = load(write_config(sign_in()))
    result = await make_runner(config).run(config.scenario("sso-login"))

    assert result.result is Outcome.SUCCESS, result.error
    assert [s.name for s in result.steps] == list(SIGN_IN_STEP_NAMES)
    assert all(s.ok and s.duration_seconds > 0 for s in result.steps)
    assert result.browser_launch_seconds is not None and result.browser_launch_seconds > 0
    # The total covers the steps only, not the browser launch.
    assert sum(s.duration_seconds for s in result.steps) <= result.duration_seconds
    assert result.duration_seconds < sum(s.duration_seconds for s in result.steps) + 1.0
    assert result.failed_step is None and result.error is None


async def test_server_delay_shows_in_the_step_that_waits_for_it(
    write_config: Callable[[str], Path], load: Load, make_runner: MakeRunner, target_env: Target
) -> None:
    target_env.delays["/idp/authorize"] = 0.3
    config = load(write_config(sign_in()))
    result = await make_runner(config).run(config.scenario("sso-login"))

    assert result.result is Outcome.SUCCESS, result.error
    durations = {s.name: s.duration_seconds for s in result.steps}
    assert durations["idp_page_loaded"] >= 0.30
    assert durations["app_page_loaded"] < durations["idp_page_loaded"]


async def test_awaited_text_never_shown_times_out_in_that_step(
    write_config: Callable[[str], Path],
    load: Load,
    make_runner: MakeRunner,
    private_tmp: Path,
) -> None:
    config = load(
        write_config("""
        scenarios:
          - name: stuck
            interval: 60s
            timeout: 15s
            steps:
              - name: home
                actions:
                  - goto: "${APP_URL}/"
              - name: dashboard_loaded
                actions:
                  - goto: "${APP_URL}/never"
                  - wait_for: "text=Dashboard"
        """)
    )
    result = await make_runner(config).run(config.scenario("stuck"))

    assert result.result is Outcome.TIMEOUT
    assert result.failed_step == "dashboard_loaded"
    assert result.reason is Reason.TIMEOUT
    assert [(s.name, s.ok) for s in result.steps] == [("home", True), ("dashboard_loaded", False)]
    # The no_leftover_processes fixture checks the process table for Chromium and driver;
    # the browser profile the killed run left in its private TMPDIR is gone too.
    assert os.listdir(private_tmp) == []


@pytest.fixture
def private_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary directory of this test's own, where workers put their TMPDIRs: other
    probers on the machine (another suite, a benchmark) cannot add to it. Short, since
    Chromium's Unix sockets live below it."""
    directory = Path(tempfile.mkdtemp(prefix="t-"))
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


async def test_wrong_text_is_an_assertion_failure(
    write_config: Callable[[str], Path], load: Load, make_runner: MakeRunner
) -> None:
    config = load(
        write_config("""
        scenarios:
          - name: wrong-page
            interval: 60s
            timeout: 20s
            steps:
              - name: home
                actions:
                  - goto: "${APP_URL}/"
                  - expect_text: {selector: "h1", text: "Maintenance"}
        """)
    )
    result = await make_runner(config).run(config.scenario("wrong-page"))

    assert result.result is Outcome.FAILURE
    assert (result.failed_step, result.reason) == ("home", Reason.ASSERTION)
    assert result.error and "Maintenance" in result.error


async def test_http_error_status_fails_the_navigation_and_masks_secrets(
    write_config: Callable[[str], Path], load: Load, make_runner: MakeRunner
) -> None:
    config = load(
        write_config("""
        scenarios:
          - name: broken
            interval: 60s
            timeout: 20s
            steps:
              - name: home
                actions:
                  - goto: "${APP_URL}/error?token=${PROBE_PASSWORD}"
        """)
    )
    result = await make_runner(config).run(config.scenario("broken"))

    assert result.result is Outcome.FAILURE
    assert (result.failed_step, result.reason) == ("home", Reason.NAVIGATION)
    assert result.error and "HTTP 500" in result.error
    dumped = json.dumps(result.to_json())
    for spelling in (PASSWORD, quote(PASSWORD, safe=""), quote_plus(PASSWORD), quote(PASSWORD)):
        assert spelling not in dumped


async def test_python_scenario_times_its_own_steps(
    write_config: Callable[[str], Path], load: Load, make_runner: MakeRunner
) -> None:
    config = load(
        write_config("""
        scenarios:
          - name: scripted
            interval: 60s
            timeout: 20s
            script: "prober.demo.flows:sign_in"
            params: {url: "${APP_URL}", user: "${PROBE_USER}", password: "${PROBE_PASSWORD}"}
        """)
    )
    result = await make_runner(config).run(config.scenario("scripted"))

    assert result.result is Outcome.SUCCESS, result.error
    assert [s.name for s in result.steps] == list(SIGN_IN_STEP_NAMES)


async def test_script_raising_inside_a_step_is_a_failure_of_that_step(
    write_config: Callable[[str], Path], load: Load, make_runner: MakeRunner, tmp_path: Path
) -> None:
    (tmp_path / "my_checks.py").write_text(
        "async def run(page, step, params):\n"
        "    async with step('home'):\n"
        "        await page.goto(params['url'])\n"
        "    async with step('balance_shown'):\n"
        "        raise RuntimeError('balance widget missing')\n"
    )
    config = load(
        write_config("""
        scenarios:
          - name: scripted
            interval: 60s
            timeout: 20s
            script: "my_checks:run"
            params: {url: "${APP_URL}"}
        """)
    )
    result = await make_runner(config).run(config.scenario("scripted"))

    assert result.result is Outcome.FAILURE
    assert (result.failed_step, result.reason) == ("balance_shown", Reason.SCRIPT)
    assert result.error == "RuntimeError: balance widget missing"
    assert [(s.name, s.ok) for s in result.steps] == [("home", True), ("balance_shown", False)]


async def test_script_that_cannot_import_is_an_error_not_a_target_failure(
    write_config: Callable[[str], Path], load: Load, make_runner: MakeRunner, tmp_path: Path
) -> None:
    (tmp_path / "broken_checks.py").write_text("async def run(page, step, params):\n    pass\n")
    config = load(
        write_config("""
        scenarios:
          - name: scripted
            interval: 60s
            timeout: 20s
            script: "broken_checks:run"
        """)
    )
    # Checked at load; broken afterwards (a dependency went away under a running pod).
    (tmp_path / "broken_checks.py").write_text("import not_installed_anywhere\n")
    result = await make_runner(config).run(config.scenario("scripted"))

    assert result.result is Outcome.ERROR
    assert result.error and "not_installed_anywhere" in result.error


@pytest.mark.parametrize(
    "call",
    [
        "page.locator('[[[[').click()",
        "page.locator('nosuchengine=foo').click()",
        "page.locator('div:has-text=x').wait_for()",
        "page.locator('xpath=//[').click()",
        "page.goto('not a url at all')",
    ],
)
async def test_selector_or_url_no_browser_accepts_is_a_config_error_not_a_failure(
    write_config: Callable[[str], Path],
    load: Load,
    make_runner: MakeRunner,
    tmp_path: Path,
    call: str,
) -> None:
    """A typo in our own scenario must not page as "target down" (result=failure)."""
    (tmp_path / "typo_checks.py").write_text(
        "async def run(page, step, params):\n"
        "    async with step('home'):\n"
        "        await page.goto(params['url'])\n"
        "    async with step('typo'):\n"
        f"        await {call}\n"
    )
    config = load(
        write_config("""
        scenarios:
          - name: scripted
            interval: 60s
            timeout: 20s
            script: "typo_checks:run"
            params: {url: "${APP_URL}"}
        """)
    )
    result = await make_runner(config).run(config.scenario("scripted"))

    assert (result.result, result.failed_step, result.reason) == (
        Outcome.ERROR,
        "typo",
        Reason.CONFIG,
    ), result.error
    assert [(s.name, s.ok) for s in result.steps] == [("home", True), ("typo", False)]


async def test_missing_browser_is_an_error(write_config: Callable[[str], Path], load: Load) -> None:
    from prober.contracts.secrets import Redactor
    from prober.supervise.browser import DEFAULT_ARGS

    config = load(write_config(sign_in()))
    runner = WorkerRunner("/nonexistent/chromium", DEFAULT_ARGS, Redactor(config.secrets))
    result = await runner.run(config.scenario("sso-login"))

    assert result.result is Outcome.ERROR
    assert result.error and "browser launch failed" in result.error
    assert result.steps == ()
