"""Scenario files in-process: load_config's models, expansion and messages, no CLI."""

from pathlib import Path

import pytest

from prober.contracts.actions import Click, Fill, Goto, WaitFor
from prober.contracts.config import ConfigError, load_config
from prober.contracts.secrets import MASK

BAD_CONFIGS = sorted((Path(__file__).parents[1] / "configs" / "bad").glob("*.yaml"))
GOOD = """\
scenarios:
  - name: sso-login
    interval: 1m30s
    timeout: 30s
    retries: 1
    steps:
      - name: app_page_loaded
        actions:
          - goto: "${APP_URL}/"
          - wait_for: {selector: "text=Sign in", state: attached}
      - name: credentials_accepted
        actions:
          - fill: {selector: "input[name=password]", value: "${PROBE_PASSWORD}"}
          - click: "button[type=submit]"
          - goto: "http://app/literal/$$HOME"
"""


# What the corpus' `${PROBER_TEST_SECRET}` expands to, as in tests/test_cli.py: quotes,
# markup and a backslash, so that a message quoting it escaped would show.
SECRET = "Zq7'\"<>&\\x=1 p@ss"


@pytest.mark.parametrize("path", BAD_CONFIGS, ids=lambda p: p.stem)
def test_every_bad_file_is_one_config_error_naming_file_and_field(path: Path) -> None:
    expected = (
        path.read_text().splitlines()[0].removeprefix("# expect: ") if path.read_text() else ""
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={"PROBER_TEST_SECRET": SECRET})
    assert str(raised.value).startswith(f"{path}: ")
    assert expected in str(raised.value)
    assert SECRET not in str(raised.value)


def test_a_good_file_expands_variables_and_remembers_them_as_secrets(tmp_path: Path) -> None:
    path = tmp_path / "scenarios.yaml"
    path.write_text(GOOD)
    config = load_config(path, environ={"APP_URL": "http://app", "PROBE_PASSWORD": "pw$1"})

    (scenario,) = config.scenarios
    assert (scenario.interval, scenario.timeout, scenario.retries) == (90.0, 30.0, 1)
    assert scenario.steps is not None
    assert [step.name for step in scenario.steps] == ["app_page_loaded", "credentials_accepted"]
    assert scenario.steps[0].actions == [
        Goto(action="goto", url="http://app/"),
        WaitFor(action="wait_for", selector="text=Sign in", state="attached"),
    ]
    assert scenario.steps[1].actions == [
        Fill(action="fill", selector="input[name=password]", value="pw$1"),
        Click(action="click", selector="button[type=submit]"),
        Goto(action="goto", url="http://app/literal/$HOME"),  # `$$` is a literal dollar
    ]
    assert set(config.secrets) == {"http://app", "pw$1"}
    assert config.scenario("sso-login") is scenario


def test_an_unknown_scenario_name_lists_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "scenarios.yaml"
    path.write_text(GOOD)
    config = load_config(path, environ={"APP_URL": "http://x", "PROBE_PASSWORD": "y"})
    with pytest.raises(ConfigError, match="no scenario named 'sso'; scenarios: sso-login"):
        config.scenario("sso")


def test_a_message_quoting_an_expanded_value_masks_it(tmp_path: Path) -> None:
    path = tmp_path / "scenarios.yaml"
    path.write_text(GOOD.replace("interval: 1m30s", "interval: ${INTERVAL}"))
    with pytest.raises(ConfigError) as raised:
        load_config(
            path, environ={"APP_URL": "http://x", "PROBE_PASSWORD": "y", "INTERVAL": "soon-ish"}
        )
    assert "soon-ish" not in str(raised.value) and MASK in str(raised.value)


def test_scripts_of_limits_the_import_check_to_those_scenarios(tmp_path: Path) -> None:
    (tmp_path / "fine_mod.py").write_text("async def run(page, step, params):\n    pass\n")
    path = tmp_path / "scenarios.yaml"
    path.write_text(
        "scenarios:\n"
        "  - {name: fine, interval: 1m, timeout: 30s, script: 'fine_mod:run'}\n"
        "  - {name: missing, interval: 1m, timeout: 30s, script: 'nowhere_mod:run'}\n"
    )
    assert [s.name for s in load_config(path, scripts_of=["fine"]).scenarios] == [
        "fine",
        "missing",
    ]
    for scripts_of in (None, ["missing"]):
        with pytest.raises(ConfigError, match="scenario 'missing': script: module 'nowhere_mod'"):
            load_config(path, scripts_of=scripts_of)
