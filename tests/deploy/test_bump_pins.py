"""deploy/tools/bump_pins.py: the rewrites on the real files, and --check writes nothing.

Resolving the newest Python packages needs PyPI, which the suite must not depend on:
that one function is replaced by the current pins (or chosen ones) here; the Debian
side (apt-cache on this machine) and the file handling are real.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
REQUIREMENTS = ROOT / "deploy/docker/requirements.txt"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bump_pins", ROOT / "deploy/tools/bump_pins.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bump_pins = load()


def test_point_release_from_base_files() -> None:
    assert bump_pins.point_release("12.4+deb12u15") == "12.15"
    with pytest.raises(bump_pins.PinError, match="does not name a Debian 12 point release"):
        bump_pins.point_release("13.8")


def test_archive_point_release_resolves_here() -> None:
    """This bookworm machine's archive names a point release the Dockerfile could use."""
    _, candidate = bump_pins.apt_versions("base-files")
    assert bump_pins.point_release(candidate).startswith("12.")


def test_dockerfile_rewrite_changes_only_the_base() -> None:
    text = DOCKERFILE.read_text()
    current = bump_pins.BASE_ARG.search(text).group(1)
    same, none = bump_pins.rewrite_dockerfile(text, current)
    assert (same, none) == (text, [])
    new, changes = bump_pins.rewrite_dockerfile(text, "debian:12.99-slim")
    assert changes == [f"BASE_IMAGE {current} -> debian:12.99-slim"]
    diff = [(a, b) for a, b in zip(text.splitlines(), new.splitlines(), strict=True) if a != b]
    assert diff == [(f"ARG BASE_IMAGE={current}", "ARG BASE_IMAGE=debian:12.99-slim")]


def test_requirements_rewrite_reports_each_change_and_keeps_the_header() -> None:
    text = REQUIREMENTS.read_text()
    pins = bump_pins.parse_pins(text)
    assert "playwright" in pins
    assert bump_pins.rewrite_requirements(text, pins) == (text, [])
    wanted = {**pins, "playwright": "9.9.9", "newdep": "1.0"}
    del wanted["idna"]
    new, changes = bump_pins.rewrite_requirements(text, wanted)
    assert changes == [
        f"playwright {pins['playwright']} -> 9.9.9",
        "newdep 1.0 (new)",
        f"idna {pins['idna']} (removed)",
    ]
    assert [line for line in new.splitlines() if line.startswith("#")] == [
        line for line in text.splitlines() if line.startswith("#")
    ]
    assert bump_pins.parse_pins(new) == wanted


def test_garbage_in_requirements_is_named() -> None:
    with pytest.raises(bump_pins.PinError, match="not a name==version pin: 'playwright>=1'"):
        bump_pins.parse_pins("playwright>=1\n")


def test_check_prints_drift_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = DOCKERFILE.read_text(), REQUIREMENTS.read_text()
    pins = bump_pins.parse_pins(before[1])
    monkeypatch.setattr(bump_pins, "resolve_requirements", lambda: {**pins, "aiohttp": "99.0"})
    assert bump_pins.main(["--check"]) == 0
    out = capsys.readouterr().out
    assert f"would change: aiohttp {pins['aiohttp']} -> 99.0" in out
    assert "Debian offers chromium " in out
    assert (DOCKERFILE.read_text(), REQUIREMENTS.read_text()) == before


def test_help_runs_as_a_script() -> None:
    proc = subprocess.run(
        [sys.executable, ROOT / "deploy/tools/bump_pins.py", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "--check" in proc.stdout
