"""Refresh the image's pins in one go and say what changed.

The image pins what can be pinned without breaking by itself:

- BASE_IMAGE in the Dockerfile: `debian:12.N-slim`, N the point release the Debian
  archive is at now (from the version of its base-files package);
- deploy/docker/requirements.txt: every runtime Python package, Playwright included,
  at the newest version pyproject.toml allows (resolved by pip into a scratch venv).

Chromium is not pinned: the build installs what Debian offers and records it in the
image (README "Image"); this tool only reports it.

    python deploy/tools/bump_pins.py          # rewrite both files, print the changes
    python deploy/tools/bump_pins.py --check  # print what would change; never fails

Then run `./dev.sh test` and `./dev.sh image`, and commit the two files.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
REQUIREMENTS = ROOT / "deploy/docker/requirements.txt"
BASE_ARG = re.compile(r"^ARG BASE_IMAGE=(\S+)$", re.M)
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)$")


class PinError(Exception):
    """A pin could not be resolved; the message says which and why."""


def point_release(base_files: str) -> str:
    """`12.15` from base-files `12.4+deb12u15`: Debian 12.N ships base-files 12.4+deb12uN."""
    m = re.fullmatch(r"12\.4\+deb12u(\d+)", base_files)
    if not m:
        raise PinError(f"base-files {base_files!r} does not name a Debian 12 point release")
    return f"12.{m.group(1)}"


def apt_versions(package: str) -> tuple[str, str]:
    """(installed, candidate) of a Debian package on this machine, `(none)` if absent."""
    proc = subprocess.run(
        ["apt-cache", "policy", package], capture_output=True, text=True, check=False
    )
    fields = dict(re.findall(r"^\s+(Installed|Candidate): (\S+)$", proc.stdout, re.M))
    if "Candidate" not in fields:
        raise PinError(f"apt knows no package {package!r}: run apt-get update on bookworm")
    return fields.get("Installed", "(none)"), fields["Candidate"]


def resolve_requirements() -> dict[str, str]:
    """The newest runtime dependencies pyproject.toml allows, as pip resolves them now."""
    with tempfile.TemporaryDirectory(prefix="bump-pins-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin/python"), "-m", "pip", "--disable-pip-version-check"]
        install = subprocess.run(
            [*pip, "install", "--quiet", "--no-cache-dir", str(ROOT)],
            capture_output=True,
            text=True,
            check=False,
        )
        if install.returncode != 0:
            raise PinError(f"pip could not install prober: {install.stderr.strip()[-2000:]}")
        frozen = subprocess.run(
            [*pip, "freeze", "--exclude", "prober"], capture_output=True, text=True, check=True
        ).stdout
    return parse_pins(frozen)


def parse_pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            m = PIN.fullmatch(line.strip())
            if not m:
                raise PinError(f"not a name==version pin: {line!r}")
            pins[m.group(1)] = m.group(2)
    return pins


def rewrite_dockerfile(text: str, base: str) -> tuple[str, list[str]]:
    m = BASE_ARG.search(text)
    if not m:
        raise PinError("no `ARG BASE_IMAGE=` line in the Dockerfile")
    if m.group(1) == base:
        return text, []
    return BASE_ARG.sub(f"ARG BASE_IMAGE={base}", text), [f"BASE_IMAGE {m.group(1)} -> {base}"]


def rewrite_requirements(text: str, pins: dict[str, str]) -> tuple[str, list[str]]:
    """The file with its comment header kept and `pins` listed, and what changed."""
    old = parse_pins(text)
    key = str.lower
    changes = [
        f"{name} {old[name]} -> {pins[name]}"
        for name in sorted(old.keys() & pins.keys(), key=key)
        if old[name] != pins[name]
    ]
    changes += [f"{name} {pins[name]} (new)" for name in sorted(pins.keys() - old, key=key)]
    changes += [f"{name} {old[name]} (removed)" for name in sorted(old.keys() - pins, key=key)]
    header = [line for line in text.splitlines() if line.startswith("#")]
    body = [f"{name}=={pins[name]}" for name in sorted(pins, key=key)]
    return "\n".join([*header, *body]) + "\n", changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only print what would change")
    args = parser.parse_args(argv)
    try:
        base = f"debian:{point_release(apt_versions('base-files')[1])}-slim"
        dockerfile, base_changes = rewrite_dockerfile(DOCKERFILE.read_text(), base)
        requirements, pin_changes = rewrite_requirements(
            REQUIREMENTS.read_text(), resolve_requirements()
        )
        installed, offered = apt_versions("chromium")
    except PinError as e:
        print(f"bump_pins: {e}", file=sys.stderr)
        return 0 if args.check else 1
    changes = base_changes + pin_changes
    for change in changes:
        print(f"{'would change' if args.check else 'changed'}: {change}")
    if not changes:
        print("bump_pins: every pin is current")
    print(
        f"bump_pins: Debian offers chromium {offered} (the next image build installs it); "
        f"this machine has {installed}"
    )
    if not args.check:
        if base_changes:
            DOCKERFILE.write_text(dockerfile)
        if pin_changes:
            REQUIREMENTS.write_text(requirements)
    return 0


if __name__ == "__main__":
    sys.exit(main())
