"""Build the container image from the Dockerfile with buildah, then run it for real.

No Docker engine or registry is needed (CI has neither): the base image is bootstrapped
from the Debian archive with mmdebstrap, the way Debian's own `debian:bookworm-slim` is
made (minbase, docs and man pages excluded), and cached for a week; the Dockerfile's
FROM is pointed at it through BASE_IMAGE. On that bare base, a fresh bookworm machine,
what `./dev.sh test` would install must resolve. Then, in the built image, as its user
and under its tini:

- its default command (ENTRYPOINT + CMD) serves the demo, and both demo scenarios must
  report `prober_scenario_last_successful 1` on /metrics, read from outside;
- `prober_build_info` must name the image's own Chromium and Playwright;
- the image's Chromium must be the major version of this machine's, the one the test
  suite ran with (and the image's Playwright just drove it);
- SIGTERM to tini must stop it cleanly (exit 0);
- `prober check` must accept deploy/k8s/base/scenarios.yaml.

Run it with the repository's venv (PyYAML reads the Deployment). Containers and storage
are private to this tool (CONTAINERS_STORAGE_CONF, vfs driver): no system configuration
is needed or changed, and nothing is left running or mounted afterwards.

    .venv/bin/python deploy/tools/build_image.py            # what `./dev.sh image` runs
    .venv/bin/python deploy/tools/build_image.py --no-build # test the last image again
    .venv/bin/python deploy/tools/build_image.py --keep     # keep the container for a look

Exit status: 0 ok, 1 a check failed, 3 buildah cannot run on this machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/prober:dev"
DEMO_SCENARIOS = ("demo-sign-in", "demo-sign-in-python")
UID_GID = "10001:10001"
MIRROR = "http://deb.debian.org"
# The sources debian:bookworm-slim ships with; the dpkg excludes its slimming applies.
BASE_OPTIONS = (
    "--variant=minbase",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
)
BASE_SUITE = "bookworm"
BASE_SOURCES = (
    f"deb {MIRROR}/debian bookworm main",
    f"deb {MIRROR}/debian bookworm-updates main",
    f"deb {MIRROR}/debian-security bookworm-security main",
)
BASE_MAX_AGE = 7 * 24 * 3600
# A TLS-inspecting proxy's CA, if the host trusts one, must reach pip in the build stage.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_CA = "/run/prober-build-ca.crt"


class CheckFailed(Exception):
    """A check of the image failed; the message says which and why."""


class CannotRun(Exception):
    """buildah cannot run on this machine at all."""


def log(msg: str) -> None:
    print(f"build_image: {msg}", file=sys.stderr, flush=True)


class Buildah:
    """buildah with a private vfs storage, so no system configuration is needed or changed."""

    def __init__(self, cache: Path) -> None:
        self.graphroot = cache / "storage"
        # Runtime state (locks, mount counts) on tmpfs, one directory per storage.
        key = hashlib.sha256(str(self.graphroot).encode()).hexdigest()[:12]
        run = Path("/run") if os.access("/run", os.W_OK) else cache
        runroot = run / f"prober-image-{key}"
        conf = cache / "storage.conf"
        cache.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{self.graphroot}"\nrunroot = "{runroot}"\n'
        )
        self.env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf)}

    def __call__(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            ["buildah", *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and proc.returncode != 0:
            raise CheckFailed(f"buildah {' '.join(args)}: {proc.stderr.strip()[-2000:]}")
        return proc.stdout.strip()

    def popen(self, args: Sequence[str], out: int | None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["buildah", *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def usable(self) -> None:
        try:
            proc = subprocess.run(
                ["buildah", "info"], env=self.env, capture_output=True, text=True, check=False
            )
        except FileNotFoundError:
            raise CannotRun("buildah is not installed (apt-get install buildah)") from None
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or ["no error message"]
            raise CannotRun(f"`buildah info` failed: {lines[-1]}")

    def image_id(self, name: str) -> str | None:
        out = self("images", "--noheading", "--no-trunc", "--format", "{{.ID}}", name, check=False)
        return out.splitlines()[0] if out else None


def ensure_base(buildah: Buildah, cache: Path) -> str:
    """The bootstrapped base image's name; made again when the recipe changes, or weekly."""
    digest = hashlib.sha256(
        "\n".join((*BASE_OPTIONS, BASE_SUITE, *BASE_SOURCES)).encode()
    ).hexdigest()[:12]
    name = f"localhost/prober-base:bookworm-{digest}"
    stamp = cache / f"base-{digest}.built"
    if (
        buildah.image_id(name)
        and stamp.exists()
        and time.time() - stamp.stat().st_mtime < BASE_MAX_AGE
    ):
        log(f"base {name}: cached ({(time.time() - stamp.stat().st_mtime) / 3600:.0f} h old)")
        return name
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        tar = Path(tmp) / "base.tar"
        proc = subprocess.run(
            ["mmdebstrap", "--quiet", *BASE_OPTIONS, BASE_SUITE, str(tar), *BASE_SOURCES],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise CheckFailed(f"mmdebstrap failed: {proc.stderr.strip()[-2000:]}")
        ctr = buildah("from", "scratch")
        try:
            buildah("add", "--quiet", ctr, str(tar), "/")
            buildah("config", "--cmd", "/bin/bash", ctr)
            buildah("commit", "--quiet", "--rm", ctr, name)
        except BaseException:
            buildah("rm", ctr, check=False)
            raise
    stamp.touch()
    for old in buildah("images", "--noheading", "--format", "{{.Name}}:{{.Tag}}").splitlines():
        if old.startswith("localhost/prober-base:") and old != name:
            buildah("rmi", old, check=False)
    log(f"base {name}: bootstrapped from {MIRROR} in {time.monotonic() - started:.0f} s")
    return name


def check_fresh_setup(buildah: Buildah, base: str) -> None:
    """On the bare base, a fresh bookworm machine: dev.sh's set-up list resolves, unpinned."""
    ctr = buildah("from", "--pull=never", base)
    try:
        buildah("copy", "--quiet", ctr, str(ROOT / "dev.sh"), "/tmp/dev.sh")
        wanted = run_in(buildah, ctr, "bash", "/tmp/dev.sh", "packages", "test", user="0:0")
        names = sorted(set(wanted.split()))
        if "chromium" not in names or any("=" in n or "/" in n for n in names):
            raise CheckFailed(f"./dev.sh packages test on a fresh bookworm: {names}")
        apt = "apt-get update -qq && apt-get install -s -y -qq --no-install-recommends"
        run_in(buildah, ctr, "sh", "-c", f"{apt} {' '.join(names)} >/dev/null", user="0:0")
        log(f"fresh bookworm: dev.sh's set-up ({' '.join(names)}) resolves against the archive")
    finally:
        buildah("rm", ctr, check=False)


def build(buildah: Buildah, base: str) -> None:
    previous = buildah.image_id(IMAGE)
    args = ["bud", "--pull=never", "--isolation", "chroot", "--layers=false"]
    args += ["--build-arg", f"BASE_IMAGE={base}", "-t", IMAGE]
    if HOST_CA_BUNDLE.exists():
        args += ["-v", f"{HOST_CA_BUNDLE}:{BUILD_CA}:ro", "--build-arg", f"PIP_CERT={BUILD_CA}"]
    started = time.monotonic()
    with tempfile.NamedTemporaryFile(prefix="prober-build-", suffix=".log") as out:
        proc = buildah.popen([*args, str(ROOT)], out.fileno())
        if proc.wait() != 0:
            raise CheckFailed(f"buildah bud failed:\n{Path(out.name).read_text()[-4000:]}")
    log(f"built {IMAGE} from {ROOT / 'Dockerfile'} in {time.monotonic() - started:.0f} s")
    if previous and previous != buildah.image_id(IMAGE):
        buildah("rmi", previous, check=False)


@contextmanager
def container(buildah: Buildah, keep: bool) -> Iterator[str]:
    ctr = buildah("from", "--pull=never", IMAGE)
    try:
        yield ctr
    finally:
        if keep:
            log(f"kept container {ctr}: buildah rm {ctr} when done")
        else:
            buildah("rm", ctr, check=False)


def run_in(buildah: Buildah, ctr: str, *cmd: str, user: str = UID_GID) -> str:
    return buildah("run", "--isolation", "chroot", "--user", user, ctr, "--", *cmd)


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


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with suppress(OSError):
            found += [int(p) for p in task.read_text().split()]
    return found


def find_tini(pid: int) -> int | None:
    """tini's pid below `buildah run` (buildah → chroot runtime → exec → tini)."""
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            argv0 = Path(f"/proc/{current}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if argv0 == b"/usr/bin/tini":
            return current
        todo += children(current)
    return None


def successes(metrics: str) -> dict[str, float]:
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(
            r'^prober_scenario_last_successful\{scenario="([^"]+)"\} (\S+)$', metrics, re.M
        )
    }


def check_default_command(buildah: Buildah, ctr: str, config: dict[str, object]) -> None:
    entrypoint = config.get("Entrypoint") or []
    cmd = config.get("Cmd") or []
    assert isinstance(entrypoint, list) and isinstance(cmd, list)
    if entrypoint[:1] != ["/usr/bin/tini"]:
        raise CheckFailed(f"ENTRYPOINT is {entrypoint}, not tini")
    if config.get("User") != UID_GID:
        raise CheckFailed(f"USER is {config.get('User')!r}, not {UID_GID}")
    port = free_port()
    # buildah's chroot isolation shares the host's network: listen on a free local port.
    env = [f"PROBER_LISTEN=127.0.0.1:{port}", "PROBER_MAX_START_OFFSET=0s"]
    argv = ["run", "--isolation", "chroot", "--user", UID_GID]
    argv += [f"--env={e}" for e in env] + [ctr, "--", *entrypoint, *cmd]
    log(f"running {' '.join([*entrypoint, *cmd])} as {UID_GID} with {' '.join(env)}")
    with tempfile.NamedTemporaryFile(prefix="prober-image-run-", suffix=".log") as out:
        proc = buildah.popen(argv, out.fileno())

        def tail() -> str:
            return Path(out.name).read_text(errors="replace")[-4000:]

        try:
            deadline = time.monotonic() + 120
            metrics, seen = "", {}
            while time.monotonic() < deadline and proc.poll() is None:
                _, metrics = get(f"http://127.0.0.1:{port}/metrics")
                seen = successes(metrics)
                if set(seen) == set(DEMO_SCENARIOS) and all(v == 1 for v in seen.values()):
                    break
                time.sleep(1)
            if proc.poll() is not None:
                raise CheckFailed(f"the default command exited ({proc.returncode}):\n{tail()}")
            if set(seen) != set(DEMO_SCENARIOS) or not all(v == 1 for v in seen.values()):
                raise CheckFailed(f"demo scenarios not successful within 120 s: {seen}\n{tail()}")
            log(f"/metrics: prober_scenario_last_successful 1 for {', '.join(sorted(seen))}")
            for path in ("/healthz", "/readyz"):
                status = get(f"http://127.0.0.1:{port}{path}")[0]
                if status != 200:
                    raise CheckFailed(f"{path} answered {status}")
            check_build_info(buildah, ctr, metrics)
            tini = find_tini(proc.pid)
            if tini is None:
                raise CheckFailed("no /usr/bin/tini process under `buildah run`")
            os.kill(tini, signal.SIGTERM)
            try:
                code = proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                raise CheckFailed(f"still running 45 s after SIGTERM to tini:\n{tail()}") from None
            if code != 0:
                raise CheckFailed(f"exit status {code} after SIGTERM to tini:\n{tail()}")
            log("SIGTERM to tini: prober stopped cleanly (exit 0)")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def check_build_info(buildah: Buildah, ctr: str, metrics: str) -> None:
    info = re.search(r"^prober_build_info\{([^}]*)\} 1\.0$", metrics, re.M)
    if not info:
        raise CheckFailed("no prober_build_info on /metrics")
    labels = dict(re.findall(r'(\w+)="([^"]*)"', info.group(1)))
    versions = run_in(buildah, ctr, "cat", "/opt/prober/versions.txt")
    image_chromium = chromium_version(run_in(buildah, ctr, "chromium", "--version"))
    playwright = re.search(r"^playwright==(\S+)$", versions, re.M)
    if labels.get("browser_version") != image_chromium:
        raise CheckFailed(f"build_info browser_version {labels} is not {image_chromium}")
    if not playwright or labels.get("playwright_version") != playwright.group(1):
        raise CheckFailed(f"build_info playwright_version {labels} is not the image's")
    log(f"prober_build_info: {labels}")
    host = subprocess.run(["chromium", "--version"], capture_output=True, text=True, check=False)
    host_chromium = chromium_version(host.stdout)
    if host_chromium.split(".")[0] != image_chromium.split(".")[0]:
        raise CheckFailed(
            f"the image ships Chromium {image_chromium}, this machine (which ran the tests) "
            f"has {host_chromium}: a different major version. Run `apt-get update && apt-get "
            "install --only-upgrade chromium` and test again"
        )
    note = "" if host_chromium == image_chromium else " (same major; patch differs)"
    log(f"Chromium: image {image_chromium}, this machine {host_chromium}{note}")


def chromium_version(output: str) -> str:
    m = re.search(r"Chromium (\d+(?:\.\d+)+)", output)
    if not m:
        raise CheckFailed(f"no version in `chromium --version` output: {output!r}")
    return m.group(1)


def deployment_pod() -> dict[str, Any]:
    """The base Deployment's pod spec."""
    path = ROOT / "deploy/k8s/base/deployment.yaml"
    pod: dict[str, Any] = yaml.safe_load(path.read_text())["spec"]["template"]["spec"]
    return pod


def example_secret() -> dict[str, str]:
    """secret.example.yaml's placeholder values, standing in for the real Secret."""
    path = ROOT / "deploy/k8s/base/secret.example.yaml"
    values: dict[str, str] = yaml.safe_load(path.read_text())["stringData"]
    return values


def deployment_env() -> dict[str, str]:
    """The base Deployment's container env; Secret refs get secret.example.yaml's values."""
    (prober,) = deployment_pod()["containers"]
    secret = example_secret()
    return {
        e["name"]: e["value"] if "value" in e else secret[e["valueFrom"]["secretKeyRef"]["key"]]
        for e in prober["env"]
    }


def secret_mounts(tmp: Path) -> list[str]:
    """`--volume` options that mount the Deployment's Secret volumes, as the kubelet would.

    Each Secret volume becomes a directory of one file per key of secret.example.yaml,
    so scenarios reading `${file:/etc/prober-credentials/KEY}` are checked as deployed.
    """
    pod = deployment_pod()
    (prober,) = pod["containers"]
    secrets = {v["name"] for v in pod.get("volumes", []) if "secret" in v}
    options = []
    for mount in prober.get("volumeMounts", []):
        if mount["name"] not in secrets:
            continue
        directory = tmp / mount["name"]
        directory.mkdir(mode=0o755)
        for key, value in example_secret().items():
            (directory / key).write_text(value)
            (directory / key).chmod(0o444)
        options.append(f"--volume={directory}:{mount['mountPath']}:ro")
    return options


def check_scenarios(buildah: Buildah, ctr: str) -> None:
    """`prober check` as the Deployment runs it: its env, its Secret files, the ConfigMap."""
    source = ROOT / "deploy/k8s/base/scenarios.yaml"
    env = deployment_env()
    buildah("copy", "--quiet", ctr, str(source), env["PROBER_CONFIG"])
    with tempfile.TemporaryDirectory(prefix="prober-secrets-") as tmp:
        Path(tmp).chmod(0o755)
        args = ["run", "--isolation", "chroot", "--user", UID_GID]
        args += [f"--env={k}={v}" for k, v in env.items()]
        args += secret_mounts(Path(tmp))
        out = buildah(*args, ctr, "--", "prober", "check")
    log(f"prober check (Deployment env, {source.relative_to(ROOT)}): {out.splitlines()[-1]}")


def leftovers(graphroot: Path) -> list[str]:
    """Mounts below our storage, and processes whose root is there: both must be none."""
    found = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(str(graphroot))
    ]
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(proc / "root").startswith(str(graphroot)):
                found.append(f"pid {proc.name}")
        except OSError:
            pass
    return found


def image_size(buildah: Buildah) -> str:
    """Uncompressed, base included, as buildah reports it (e.g. `1.06 GB`)."""
    rows = json.loads(buildah("images", "--json", IMAGE))
    return str(rows[0]["size"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the test container")
    parser.add_argument("--no-build", action="store_true", help=f"test the last {IMAGE}")
    args = parser.parse_args(argv)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "prober-image"
    try:
        if os.geteuid() != 0:
            raise CannotRun("needs root (run it through ./dev.sh image, which uses sudo)")
        buildah = Buildah(cache)
        buildah.usable()
    except CannotRun as e:
        print(f"dev.sh image: buildah cannot run on this machine ({e}): image NOT built or tested")
        return 3
    started = time.monotonic()
    try:
        if not args.no_build or not buildah.image_id(IMAGE):
            base = ensure_base(buildah, cache)
            check_fresh_setup(buildah, base)
            build(buildah, base)
        config = json.loads(buildah("inspect", "--type", "image", IMAGE))["OCIv1"]["config"]
        with container(buildah, args.keep) as ctr:
            check_default_command(buildah, ctr, config)
            check_scenarios(buildah, ctr)
        size = image_size(buildah)
    except CheckFailed as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        left = [] if args.keep else leftovers(buildah.graphroot)
        if left:
            log(f"FAILED: left behind: {left}")
    if left:
        return 1
    log(
        f"OK: {IMAGE} is {size} (uncompressed); "
        f"build and checks took {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
