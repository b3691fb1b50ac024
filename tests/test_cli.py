"""The CLI contract: verbs, exit codes (0 ok, 1 failed run, 2 bad input), messages."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
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


# What `${PROBER_TEST_SECRET}` expands to in the corpus: quotes, markup and a backslash,
# so that repr(), JSON or HTML escaping of it would show.
SECRET = "Zq7'\"<>&\\x=1 p@ss"
# Loose on purpose (the machine is shared and noisy): CPU seconds, not wall time, and
# far below what the attacks cost (26-60+ s and 0.7-2 GB).
MAX_CHECK_CPU_SECONDS = 10.0
MAX_CHECK_RSS_BYTES = 400 * 1024 * 1024


@dataclass
class Checked:
    returncode: int
    stdout: str
    stderr: str
    cpu_seconds: float
    max_rss_bytes: int


def check(path: Path, env: dict[str, str] | None = None) -> Checked:
    """`prober check`, with the CPU time and peak memory of that one process (wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "prober", "check", "--config", str(path)],
            stdout=out,
            stderr=err,
            cwd=ROOT,
            env={**os.environ, "PROBER_TEST_SECRET": SECRET, **(env or {})},
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Checked(
            process.returncode,
            out.read().decode(),
            err.read().decode(),
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss * 1024,
        )


def assert_refused(checked: Checked, path: Path, expected: str) -> None:
    """Exit 2, one short message naming the file, no traceback, no secret, bounded cost."""
    assert checked.returncode == 2, checked.stderr
    assert checked.stdout == ""
    assert "Traceback" not in checked.stderr
    assert checked.cpu_seconds < MAX_CHECK_CPU_SECONDS
    assert checked.max_rss_bytes < MAX_CHECK_RSS_BYTES
    assert f"prober check: {path}: " in checked.stderr
    assert expected in checked.stderr
    lines = checked.stderr.splitlines()
    assert len(lines) <= 11 and all(len(line) <= 400 for line in lines), checked.stderr
    for spelling in (SECRET, repr(SECRET)[1:-1], "Zq7", "p@ss"):
        assert spelling not in checked.stderr


@pytest.mark.parametrize("path", BAD_CONFIGS, ids=lambda p: p.stem)
def test_bad_config_exits_2_with_one_clear_message(path: Path) -> None:
    assert_refused(check(path), path, expected_message(path))


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


def test_an_unusable_ca_file_is_a_settings_error(clean_env: None, tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("this is not a certificate\n")
    for path, problem in ((not_pem, "no PEM certificate"), (tmp_path / "gone.pem", "cannot read")):
        completed = prober(
            "check", "--config", str(BAD_CONFIGS[0]), env={"PROBER_CA_FILE": str(path)}
        )
        assert completed.returncode == 2
        assert f"PROBER_CA_FILE: {path}: " in completed.stderr and problem in completed.stderr
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


def test_a_reader_that_goes_away_is_no_traceback(clean_env: None) -> None:
    """`prober rules ... | head -1`: the pipe closes before prober writes."""
    read, write = os.pipe()
    os.close(read)  # every write to `write` now fails with EPIPE
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "prober", "rules", "--config", "deploy/k8s/base/scenarios.yaml"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=False,
        )
    finally:
        os.close(write)

    assert (completed.returncode, completed.stderr) == (1, "")


def test_rules_on_a_bad_slo_block_exits_2_like_check() -> None:
    path = BAD_CONFIGS[0].parent / "slo_objective_ratio.yaml"
    completed = prober("rules", "--config", str(path))
    assert completed.returncode == 2
    assert expected_message(path) in completed.stderr
    assert "Traceback" not in completed.stderr and completed.stdout == ""
    unknown = prober("rules", "--config", str(path), "--format", "sloth")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


SCENARIO = "  - {name: login, interval: 1m, timeout: 30s, steps: [{name: home, actions: [{goto: 'http://127.0.0.1/'}]}]}\n"


def alias_bomb(levels: int = 7, width: int = 9) -> str:
    """The classic: each level a list of `width` aliases to the level below (9**7 values)."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\nscenarios:\n" + SCENARIO


def merge_bomb(levels: int = 24) -> str:
    """Merge keys instead of lists: each level merges the one below under two keys."""
    lines = ["m0: &m0 {a: 1, b: 2}"]
    lines += [
        f"m{i}: &m{i} {{x: {{<<: *m{i - 1}}}, y: {{<<: *m{i - 1}}}}}" for i in range(1, levels)
    ]
    return "\n".join(lines) + "\nscenarios:\n" + SCENARIO


GENERATED = {
    "alias_bomb": (
        alias_bomb,
        "aliases expand to more than 500,000 values; an alias bomb is refused",
    ),
    "merge_key_bomb": (
        merge_bomb,
        "aliases expand to more than 500,000 values; an alias bomb is refused",
    ),
    "lists_600_deep": (
        lambda: "scenarios:\n" + SCENARIO + "extra: " + "[" * 600 + "]" * 600 + "\n",
        "nested deeper than 64 levels",
    ),
    "maps_600_deep": (
        lambda: (
            "scenarios:\n"
            + SCENARIO
            + "".join(f"{'  ' * i}k{i}:\n" for i in range(600))
            + "  " * 600
            + "leaf\n"
        ),
        "nested deeper than 64 levels",
    ),
    "aliases_nested_past_the_depth_limit": (
        lambda: (
            "a: &a "
            + "[" * 40
            + "x"
            + "]" * 40
            + "\nb: "
            + "[" * 40
            + "*a"
            + "]" * 40
            + "\nscenarios:\n"
            + SCENARIO
        ),
        "aliases nest deeper than 64 levels",
    ),
    "file_of_50_mb": (
        lambda: "scenarios:\n" + SCENARIO + "# padding\n" * (5 * 1024 * 1024),
        "larger than 1024 KiB: a scenario file this big is refused unread",
    ),
    "twenty_thousand_faults": (
        lambda: "scenarios:\n" + "".join(f"  - {{name: s{i}}}\n" for i in range(10_000)),
        "... and 19,990 more",
    ),
}


@pytest.mark.parametrize("case", GENERATED, ids=str)
def test_generated_hostile_file_is_refused_quickly(case: str, tmp_path: Path) -> None:
    make, expected = GENERATED[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(make())
    assert_refused(check(path), path, expected)


def test_many_faults_list_the_first_ten_by_scenario_and_field(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text("scenarios:\n" + "".join(f"  - {{name: s{i}}}\n" for i in range(10_000)))
    checked = check(path)

    lines = checked.stderr.splitlines()
    assert lines[0] == f"prober check: {path}: scenario 's0': interval: required field is missing"
    assert lines[1] == f"{path}: scenario 's0': timeout: required field is missing"
    assert lines[9] == f"{path}: scenario 's4': timeout: required field is missing"
    assert lines[10:] == ["... and 19,990 more"]


SCRIPTS = {
    "syntax_error": (
        "async def run(page, step, params)\n    pass\n",
        "run",
        "script: module 'probe_mod' has a syntax error (probe_mod.py, line 1): expected ':'",
    ),
    "raises_on_import": (
        "import os\nraise RuntimeError('cannot reach ' + os.environ['PROBER_TEST_SECRET'])\n",
        "run",
        "script: module 'probe_mod' raises on import: RuntimeError: cannot reach ********",
    ),
    "imports_a_missing_module": (
        "import not_installed_anywhere\n",
        "run",
        "script: module 'probe_mod' does not import: "
        "ModuleNotFoundError: No module named 'not_installed_anywhere'",
    ),
    "missing_function": (
        "async def main(page, step, params):\n    pass\n",
        "run",
        "script: module 'probe_mod' has no function 'run'",
    ),
    "not_callable": (
        "run = 'a string'\n",
        "run",
        "script: 'probe_mod:run' is a str, not a function",
    ),
    "not_async": (
        "def run(page, step, params):\n    pass\n",
        "run",
        "script: 'probe_mod:run' must be an async function: async def run(page, step, params)",
    ),
    "hangs_on_import": (
        "import time\nprint('loading')\ntime.sleep(3600)\n",
        "run",
        "script: importing module 'probe_mod' did not finish within 5s",
    ),
    "exits_on_import": (
        "import os\nos._exit(3)\n",
        "run",
        "script: importing module 'probe_mod' ended the Python process that imported it",
    ),
}


@pytest.mark.parametrize("case", SCRIPTS, ids=str)
def test_script_that_cannot_run_fails_check(case: str, tmp_path: Path) -> None:
    source, function, expected = SCRIPTS[case]
    (tmp_path / "probe_mod.py").write_text(source)
    path = tmp_path / "scenarios.yaml"
    # The secret is the file's (a param), so the module's error quoting it is masked.
    path.write_text(
        "scenarios:\n"
        f"  - {{name: scripted, interval: 1m, timeout: 30s, script: 'probe_mod:{function}',\n"
        "      params: {password: '${PROBER_TEST_SECRET}'}}\n"
    )
    assert_refused(check(path), path, f"scenario 'scripted': {expected}")


def test_script_in_a_missing_submodule_fails_check(tmp_path: Path) -> None:
    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "__init__.py").write_text("")
    path = tmp_path / "scenarios.yaml"
    path.write_text(
        "scenarios:\n"
        "  - {name: scripted, interval: 1m, timeout: 30s, script: 'probes.chekout:run'}\n"
    )
    assert_refused(check(path), path, "script: module 'probes.chekout' cannot be found")


def test_good_script_passes_check_without_running_it(tmp_path: Path) -> None:
    (tmp_path / "probe_mod.py").write_text(
        "import sys\nprint('imported', file=sys.stderr)\n"
        "async def run(page, step, params):\n    raise AssertionError('never run by check')\n"
    )
    path = tmp_path / "scenarios.yaml"
    path.write_text(
        "scenarios:\n  - {name: scripted, interval: 1m, timeout: 30s, script: 'probe_mod:run'}\n"
    )
    checked = check(path)
    assert (checked.returncode, checked.stderr) == (0, "")
    assert checked.stdout == f"{path}: ok, 1 scenario(s): scripted\n"


def _two_scripts(directory: Path) -> Path:
    """`fine` (does nothing) and `broken` (its module raises on import), side by side."""
    (directory / "fine_mod.py").write_text("async def run(page, step, params):\n    pass\n")
    (directory / "broken_mod.py").write_text("raise RuntimeError('no such backend')\n")
    path = directory / "scenarios.yaml"
    path.write_text(
        "scenarios:\n"
        "  - {name: fine, interval: 1m, timeout: 30s, script: 'fine_mod:run'}\n"
        "  - {name: broken, interval: 1m, timeout: 30s, script: 'broken_mod:run'}\n"
    )
    return path


def test_run_refuses_its_own_scenario_whose_script_does_not_import(tmp_path: Path) -> None:
    path = _two_scripts(tmp_path)
    completed = prober("run", "--config", str(path), "broken")
    assert completed.returncode == 2
    assert completed.stderr == (
        f"prober run: {path}: scenario 'broken': script: module 'broken_mod' raises on import:"
        " RuntimeError: no such backend\n"
    )
    assert completed.stdout == ""


async def test_run_does_not_import_the_scripts_of_other_scenarios(
    tmp_path: Path, clean_env: None
) -> None:
    """`prober run NAME` runs one scenario: another's broken script is `prober check`'s
    business, and importing every script cost each one-shot run a child Python."""
    path = _two_scripts(tmp_path)
    completed = await _run_async("run", "--config", str(path), "fine")
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["result"] == "success"
    assert check(path).returncode == 2  # the file as a whole is still refused


@pytest.mark.parametrize("presses", [1, 2, 5])
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
        await asyncio.sleep(0.02)  # a hand on the keys: the next press lands anywhere
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == 130
    assert stderr.decode().splitlines() == ["prober run: interrupted"]
    assert stdout == b""
    await wait_until(lambda: not [p for p in run_tree if p.is_running()], within=10)
