"""deploy/tools/build_image.py where buildah cannot run: one clear line, exit 3.

The build and the checks themselves run for real in `./dev.sh image` (CI runs it after
the suite); a second image build inside the suite would double CI's time.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_without_buildah_it_says_so_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, ROOT / "deploy/tools/build_image.py"],
        env={"PATH": str(tmp_path), "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stdout.startswith("dev.sh image: buildah cannot run on this machine (")
    assert proc.stdout.rstrip().endswith("image NOT built or tested")
    assert len(proc.stdout.splitlines()) == 1 and proc.stderr == ""
