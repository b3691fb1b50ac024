"""The bounded, strict YAML loader, in process: limits, refusals, and what still loads."""

import os
import time
from pathlib import Path

import pytest

from prober.contracts.yamlload import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    YamlLoadError,
    load_yaml,
    load_yaml_file,
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: !!int abc", "line 1, column 4: the value is not a valid !!int"),
        ("a: !!float abc", "the value is not a valid !!float"),
        ("a: !!bool maybe", "the value is not a valid !!bool"),
        ("a: !!int " + "9" * 5000, "the value is not a valid !!int"),
        ("a: !!timestamp 2026-02-30", "tag !!timestamp is not supported"),
        ("a: !!binary aGk=", "tag !!binary is not supported"),
        ("a: !!python/name:os.system x", "tag !!python/name:os.system is not supported"),
        ("a: &x [*x]", "an anchor is used inside itself"),
        ("a: &x {b: *x}", "an anchor is used inside itself"),
        (
            "a: 1\nb: 2\na: 3",
            "line 3, column 1: key 'a' appears twice in one mapping (first at line 1)",
        ),
        ("x:\n  - {k: 1, k: 2}", "key 'k' appears twice"),
        ("a: [", "YAML syntax error"),
        ("a: 1\n---\nb: 2", "expected a single document in the stream, but found another"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH} levels"),
    ],
)
def test_refused_with_the_line(text: str, message: str) -> None:
    with pytest.raises(YamlLoadError, match=None) as raised:
        load_yaml(text)
    assert message in str(raised.value)


def test_what_a_scenario_file_uses_still_loads() -> None:
    text = """\
defaults: &defaults {interval: 1m, timeout: 30s}
scenarios:
  - <<: *defaults
    name: a
    timeout: 10s          # a merged key may be overridden: that is what merge keys are for
    when: 2026-13-45
    on: yes
    n: 3
    f: 1.5
    none: ~
"""
    data = load_yaml(text)
    assert data["scenarios"][0] == {
        "interval": "1m",
        "timeout": "10s",
        "name": "a",
        "when": "2026-13-45",  # dates stay strings, impossible or not
        True: True,
        "n": 3,
        "f": 1.5,
        "none": None,
    }
    assert load_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    assert load_yaml("") is None


def test_alias_bomb_is_refused_before_it_is_built() -> None:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * 9) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    started = time.process_time()
    with pytest.raises(YamlLoadError, match="an alias bomb is refused"):
        load_yaml("\n".join(lines))
    assert time.process_time() - started < 2.0  # 9**9 values, had it been built


def test_aliases_within_the_limits_share_one_value() -> None:
    data = load_yaml("a: &a [1, 2]\nb: [*a, *a]")
    assert data == {"a": [1, 2], "b": [[1, 2], [1, 2]]}


def test_aliases_cannot_nest_past_the_depth_limit() -> None:
    half = MAX_DEPTH // 2 + 1
    text = f"a: &a {'[' * half}x{']' * half}\nb: {'[' * half}*a{']' * half}"
    with pytest.raises(YamlLoadError, match=f"aliases nest deeper than {MAX_DEPTH} levels"):
        load_yaml(text)


def test_file_above_the_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("w") as file:
        file.truncate(50 * 1024 * 1024)  # sparse: 50 MB that costs nothing to write
    with pytest.raises(YamlLoadError, match="larger than 1024 KiB"):
        load_yaml_file(path)
    path.write_text("a: " + "x" * (MAX_FILE_BYTES - 3))
    assert len(load_yaml_file(path)["a"]) == MAX_FILE_BYTES - 3


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(YamlLoadError, match="scenario file not found"):
        load_yaml_file(tmp_path / "missing.yaml")
    with pytest.raises(YamlLoadError, match="not a regular file"):
        load_yaml_file(tmp_path)
    os.mkfifo(tmp_path / "fifo.yaml")  # would block an open() for ever
    with pytest.raises(YamlLoadError, match="not a regular file"):
        load_yaml_file(tmp_path / "fifo.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"a: caf\xe9\n")
    with pytest.raises(YamlLoadError, match=r"not UTF-8 text \(byte 7 of the file\)"):
        load_yaml_file(tmp_path / "latin1.yaml")
