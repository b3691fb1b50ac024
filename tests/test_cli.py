"""The CLI contract: verbs, exit codes (0 ok, 1 failed run, 2 bad input), messages."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.conftest import PASSWORD, SIGN_IN_STEP_NAMES, Target, sign_in_scenario
from tests.helpers import wait_until

BAD_CONFIGS = sorted((Path(__file__).parent / "configs" / "bad").glob("*.yaml"))
ROOT = Path(__file__).parent.parent


def prober(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prober", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )


def expected_message(path: Path) -> str:
    first = path.read_text().splitlines()[0] if path.read_text() else ""
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: ...'"
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("path", BAD_CONFIGS, ids=lambda p: p.stem)
def test_bad_config_exits_2_with_one_clear_message(path: Path) -> None:
    completed = prober("check", "--config", str(path))

    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert str(path) in completed.stderr
    assert expected_message(path) in completed.stderr
    assert completed.stdout == ""


def test_missing_config_file() -> None:
    completed = prober("check", "--config", "/nonexistent/scenarios.yaml")
    assert completed.returncode == 2
    assert "/nonexistent/scenarios.yaml: scenario file not found" in completed.stderr


def test_no_config_given(clean_env: None) -> None:
    completed = prober("check")
    assert completed.returncode == 2
    assert "pass --config FILE or set PROBER_CONFIG" in completed.stderr


def test_invalid_setting_names_the_variable(clean_env: None) -> None:
    completed = prober(
        "check", "--config", str(BAD_CONFIGS[0]), env={"PROBER_MAX_CONCURRENCY": "lots"}
    )
    assert completed.returncode == 2
    assert "PROBER_MAX_CONCURRENCY" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_check_accepts_the_bundled_demo(clean_env: None) -> None:
    demo = ROOT / "prober" / "demo" / "scenarios.yaml"
    env = {"DEMO_URL": "http://127.0.0.1:1", "DEMO_USER": "u", "DEMO_PASSWORD": "p"}
    completed = prober("check", "--config", str(demo), env=env)
    assert completed.returncode == 0, completed.stderr
    assert "2 scenario(s): demo-sign-in, demo-sign-in-python" in completed.stdout


@pytest.fixture
def sign_in_config(write_config: Callable[[str], Path]) -> Path:
    broken = """\
  - name: broken
    interval: 60s
    timeout: 20s
    steps:
      - name: home
        actions:
          - goto: "${APP_URL}/error"
"""
    return write_config("scenarios:\n" + sign_in_scenario() + broken)


async def test_run_prints_the_result_json_and_exits_0(
    sign_in_config: Path, target_env: Target, clean_env: None
) -> None:
    completed = await _run_async("run", "--config", str(sign_in_config), "sso-login")

    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["scenario"] == "sso-login"
    assert result["result"] == "success"
    assert result["failed_step"] is None and result["error"] is None
    assert [s["name"] for s in result["steps"]] == list(SIGN_IN_STEP_NAMES)
    assert all(s["ok"] and s["duration_seconds"] > 0 for s in result["steps"])
    assert result["duration_seconds"] > 0
    assert PASSWORD not in completed.stdout + completed.stderr


async def test_run_of_a_failing_scenario_exits_1(
    sign_in_config: Path, target_env: Target, clean_env: None
) -> None:
    completed = await _run_async("run", "--config", str(sign_in_config), "broken")

    assert completed.returncode == 1
    result = json.loads(completed.stdout)
    assert (result["result"], result["failed_step"], result["reason"]) == (
        "failure",
        "home",
        "navigation",
    )


def test_run_of_an_unknown_scenario_exits_2(sign_in_config: Path, target_env: Target) -> None:
    completed = prober("run", "--config", str(sign_in_config), "nope")
    assert completed.returncode == 2
    assert "no scenario named 'nope'; scenarios: sso-login, broken" in completed.stderr


async def _run_async(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI without blocking the event loop that serves the target site."""
    import asyncio

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "prober",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return subprocess.CompletedProcess(args, process.returncode, stdout.decode(), stderr.decode())


def test_config_errors_mask_values_from_the_environment(
    write_config: Callable[[str], Path],
) -> None:
    path = write_config(
        'scenarios:\n  - name: login\n    interval: "${PROBE_INTERVAL}"\n    timeout: 5s\n'
        "    steps: [{name: home, actions: [{goto: 'http://127.0.0.1/'}]}]\n"
    )
    completed = prober("check", "--config", str(path), env={"PROBE_INTERVAL": "hunter2-x"})

    assert completed.returncode == 2
    assert "scenario 'login': interval: invalid duration '********'" in completed.stderr
    assert "hunter2" not in completed.stderr


def test_rules_prints_the_rules_without_the_probes_secrets(
    clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # deploy's scenarios use ${APP_URL} and credentials that CI does not have.
    for name in ("APP_URL", "PROBE_USER", "PROBE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    completed = prober("rules", "--config", "deploy/k8s/base/scenarios.yaml")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == (ROOT / "deploy/prometheus/slo-rules.yaml").read_text()
    manifest = prober(
        "rules", "--config", "deploy/k8s/base/scenarios.yaml", "--format", "prometheusrule"
    )
    assert manifest.returncode == 0, manifest.stderr
    assert "kind: PrometheusRule" in manifest.stdout


def test_rules_on_a_bad_slo_block_exits_2_like_check() -> None:
    path = BAD_CONFIGS[0].parent / "slo_objective_ratio.yaml"
    completed = prober("rules", "--config", str(path))
    assert completed.returncode == 2
    assert expected_message(path) in completed.stderr
    assert "Traceback" not in completed.stderr and completed.stdout == ""
    unknown = prober("rules", "--config", str(path), "--format", "sloth")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


@pytest.mark.parametrize("presses", [1, 2])
async def test_ctrl_c_on_run_exits_130_with_one_line_and_leaves_nothing(
    write_config: Callable[[str], Path], target_env: Target, clean_env: None, presses: int
) -> None:
    """SIGINT to the foreground process group, as a terminal sends it, while a page hangs."""
    config = write_config(f"""\
        scenarios:
          - name: hangs
            interval: 60s
            timeout: 60s
            steps:
              - name: home
                actions:
                  - goto: "{target_env.url}/never"
                  - wait_for: "text=never there"
        """)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "prober", "run", "--config", str(config), "hangs",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=ROOT, start_new_session=True,
    )  # fmt: skip
    parent = psutil.Process(process.pid)

    def browsers() -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return [p for p in parent.children(recursive=True) if "chrom" in p.name()]
        return []

    await wait_until(lambda: len(browsers()) > 0, within=60)
    await asyncio.sleep(0.5)  # the page is loading
    run_tree = parent.children(recursive=True)
    for _ in range(presses):
        os.killpg(process.pid, signal.SIGINT)
        await asyncio.sleep(0.05)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == 130
    assert stderr.decode().splitlines() == ["prober run: interrupted"]
    assert stdout == b""
    await wait_until(lambda: not [p for p in run_tree if p.is_running()], within=10)
