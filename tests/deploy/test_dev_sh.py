"""dev.sh's set-up: what it would install on a machine without anything, for real.

`./dev.sh packages VERB` prints the Debian packages set-up would install, from the same
function set-up uses. Run with a PATH that hides every tool, it lists everything a
fresh machine needs; each must be a bare package name (an exact version disappears
from the archive at Debian's next security update and breaks set-up for everyone), and
apt must resolve the whole list against this bookworm machine's archive.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEV_SH = ROOT / "dev.sh"
DEBIAN_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
NEEDS = {
    "demo": {"python3", "python3-venv", "python3-pip", "chromium"},
    "test": {"python3", "python3-venv", "python3-pip", "chromium", "prometheus"},
    "image": {"python3", "python3-venv", "python3-pip", "chromium", "buildah", "mmdebstrap"},
}


def packages(verb: str, path: str) -> list[str]:
    proc = subprocess.run(
        ["/bin/bash", str(DEV_SH), "packages", verb],
        env={"PATH": path},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.fixture
def bare_path(tmp_path: Path) -> str:
    """A PATH with none of the tools set-up looks for (only what dev.sh itself runs)."""
    dirname = shutil.which("dirname")
    assert dirname
    (tmp_path / "dirname").symlink_to(dirname)
    return str(tmp_path)


@pytest.mark.parametrize("verb", sorted(NEEDS))
def test_fresh_machine_gets_bare_package_names(verb: str, bare_path: str) -> None:
    wanted = packages(verb, bare_path)
    assert NEEDS[verb] <= set(wanted), wanted
    for name in wanted:
        assert DEBIAN_NAME.fullmatch(name), f"{name!r}: set-up must not pin a version or release"


def test_fresh_machine_list_resolves_on_debian(bare_path: str) -> None:
    """Everything any verb would install resolves now, without a pin (apt simulates)."""
    apt_get = shutil.which("apt-get")
    if not apt_get:
        pytest.fail("apt-get not found: these tests need a Debian bookworm machine")
    wanted = sorted({name for verb in NEEDS for name in packages(verb, bare_path)})
    proc = subprocess.run(
        [apt_get, "install", "-s", "-y", "--no-install-recommends", *wanted],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert re.search(r"^Inst chromium ", proc.stdout, re.M) or "chromium is already" in (
        proc.stdout
    ), proc.stdout[-2000:]


def test_set_up_left_nothing_missing_for_the_tests() -> None:
    """After `./dev.sh test` set up this machine, it would install nothing more."""
    assert packages("test", os.environ["PATH"]) == []


def test_unknown_verb_is_a_usage_error() -> None:
    proc = subprocess.run(
        [str(DEV_SH), "packages", "deploy"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert "usage: ./dev.sh" in proc.stderr
