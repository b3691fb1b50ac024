"""Private CAs for the browser: an NSS database of this worker's own (PROBER_CA_FILE).

Chromium on Linux takes locally added trust anchors from the NSS database in
`$HOME/.pki/nssdb`. Each worker builds one in its private TMPDIR (removed when the
worker retires) and launches the browser with HOME pointed there: nothing is shared
between concurrent browsers, nothing outlives the worker, and certificate checking
stays on; the CAs are only added as trusted issuers (`C,,`: SSL only). With a
pre-started worker this happens before the run is due, outside its timing.
"""

import os
import subprocess
import tempfile
from pathlib import Path

from prober.contracts.cabundle import read_ca_bundle

CERTUTIL = "certutil"
CERTUTIL_SECONDS = 10.0


class TrustError(RuntimeError):
    """The NSS database could not be built; the message says why."""


def browser_home(ca_file: Path) -> Path:
    """A fresh HOME whose NSS database trusts every CA in `ca_file`."""
    blocks = read_ca_bundle(ca_file)
    home = Path(tempfile.mkdtemp(prefix="home-"))
    database = home / ".pki" / "nssdb"
    database.mkdir(parents=True)
    _certutil("-N", "-d", f"sql:{database}", "--empty-password")
    for number, block in enumerate(blocks, 1):
        pem = home / f"ca-{number}.pem"
        pem.write_text(block + "\n")
        _certutil(
            "-A", "-d", f"sql:{database}", "-t", "C,,", "-n", f"prober-ca-{number}", "-i", str(pem)
        )
        pem.unlink()
    return home


def browser_env(home: Path) -> dict[str, str | float | bool]:
    """The worker's environment with HOME replaced, for the browser process."""
    return {**os.environ, "HOME": str(home)}


def _certutil(*args: str) -> None:
    try:
        done = subprocess.run(
            [CERTUTIL, *args], capture_output=True, text=True, timeout=CERTUTIL_SECONDS, check=False
        )
    except FileNotFoundError:
        raise TrustError(
            "PROBER_CA_FILE needs certutil (Debian package libnss3-tools), not found"
        ) from None
    except subprocess.TimeoutExpired:
        raise TrustError(f"certutil {args[0]} took more than {CERTUTIL_SECONDS:g}s") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise TrustError(f"certutil {args[0]} failed: {detail[-1] if detail else done.returncode}")
