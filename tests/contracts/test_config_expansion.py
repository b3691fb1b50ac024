"""Scenario file expansion: secrets from the environment and from files, public values."""

import os
from pathlib import Path

import pytest

from prober.contracts.actions import Fill, Goto
from prober.contracts.config import ConfigError, load_config


def write(tmp_path: Path, value: str, name: str = "login") -> Path:
    path = tmp_path / "scenarios.yaml"
    path.write_text(
        f"""
scenarios:
  - name: {name}
    interval: 1m
    timeout: 30s
    steps:
      - name: home
        actions:
          - goto: "${{public:APP_URL}}/login"
          - fill: {{selector: "#password", value: "{value}"}}
"""
    )
    return path


def first_fill(path: Path, environ: dict[str, str]) -> tuple[str, str, tuple[str, ...]]:
    config = load_config(path, environ)
    assert config.scenarios[0].steps is not None
    goto, fill = config.scenarios[0].steps[0].actions
    assert isinstance(goto, Goto) and isinstance(fill, Fill)
    return goto.url, fill.value, config.secrets


def test_a_secret_file_is_read_and_masked_and_a_public_value_is_not(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret-from-file\n")  # the line ending an editor adds is dropped
    path = write(tmp_path, "${file:" + str(secret) + "}")
    url, value, secrets = first_fill(path, {"APP_URL": "http://app.internal"})
    assert (url, value) == ("http://app.internal/login", "s3cret-from-file")
    assert secrets == ("s3cret-from-file",)
    assert load_config(path, {"APP_URL": "http://app.internal"}).files == (secret,)


def test_env_and_bare_variables_stay_secret(tmp_path: Path) -> None:
    path = write(tmp_path, "${env:PW}-${PW2}")
    _, value, secrets = first_fill(path, {"APP_URL": "http://app", "PW": "one", "PW2": "two"})
    assert value == "one-two"
    assert set(secrets) == {"one", "two"}


def test_a_relative_secret_file_is_next_to_the_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "password").write_text("relative-secret")
    path = write(tmp_path, "${file:credentials/password}")
    assert first_fill(path, {"APP_URL": "http://x"})[1] == "relative-secret"


@pytest.mark.parametrize(
    ("prepare", "why"),
    [
        (lambda p: None, "cannot be read: No such file or directory"),
        (lambda p: p.mkdir(), "cannot be read: Is a directory"),
        (lambda p: p.write_bytes(b"\xff\xfe-not-text"), "is not UTF-8 text"),
        (lambda p: p.write_text("\n"), "is empty"),
        (lambda p: p.write_text("x" * 70000), "is larger than 65536 bytes"),
    ],
    ids=["missing", "directory", "binary", "empty", "huge"],
)
def test_an_unusable_secret_file_names_the_file_and_scenario(
    tmp_path: Path, prepare: object, why: str
) -> None:
    secret = tmp_path / "password"
    prepare(secret)  # type: ignore[operator]
    path = write(tmp_path, "${file:" + str(secret) + "}", name="sso-login")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"APP_URL": "http://x"})
    message = str(caught.value)
    assert message.startswith(f"{path}: scenario 'sso-login': steps[0] (home).actions[1].fill")
    assert f"secret file {secret} {why}" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_secret_file_never_prints_its_value(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("do-not-print-me")
    secret.chmod(0)
    path = write(tmp_path, "${file:" + str(secret) + "}")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"APP_URL": "http://x"})
    assert "Permission denied" in str(caught.value)
    assert "do-not-print-me" not in str(caught.value)


def test_a_missing_public_variable_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "literal")
    with pytest.raises(ConfigError, match="environment variable APP_URL is not set"):
        load_config(path, {})
