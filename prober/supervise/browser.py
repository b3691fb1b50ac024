"""Finding the system Chromium and the flags every run launches it with.

We drive Debian's Chromium through `executable_path` rather than a browser downloaded by
`playwright install`: images and air-gapped clusters get the browser from the same
package mirror as everything else, and security updates come with the OS.
"""

import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path

# --no-sandbox: containers run us without the user namespaces Chromium's sandbox needs.
# --disable-dev-shm-usage: a small /dev/shm otherwise crashes renderers.
# The last three keep Chromium from phoning home, which stalls on closed networks.
DEFAULT_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")


class BrowserNotFoundError(Exception):
    pass


def find_browser(configured: Path | None) -> Path:
    """The configured executable, else the first Chromium on PATH."""
    if configured is not None:
        if not configured.is_file():
            raise BrowserNotFoundError(f"PROBER_BROWSER_PATH={configured} does not exist")
        return configured
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise BrowserNotFoundError(
        "no Chromium found on PATH (tried " + ", ".join(_CANDIDATES) + "); install Debian's "
        "'chromium' package or set PROBER_BROWSER_PATH"
    )


def browser_version(path: Path) -> str:
    """`156.0.8078.73` from `chromium --version`, or `unknown`; only for build_info."""
    try:
        output = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    words = [w for w in output.split() if w[:1].isdigit()]
    return words[0] if words else "unknown"


def playwright_version() -> str:
    return version("playwright")
