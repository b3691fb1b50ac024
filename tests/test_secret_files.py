"""A credential mounted from a Kubernetes Secret is swapped under a running `prober serve`:
the next run uses the new value, and neither value shows anywhere prober writes."""

import json
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.artifact_checks import leaks
from tests.sso_site import SSO_SCENARIO, SsoSite, serve_sso
from tests.test_serve import Served, _wait_until, serving

SEED = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
OLD, NEW = "first-Pa55word!", "second-Pa55word?"


def swap_secret(mount: Path, files: dict[str, str]) -> None:
    """What the kubelet's AtomicWriter does to a Secret volume: new `..<stamp>/`, an
    atomic rename of `..data`, key symlinks through `..data`, old directory removed."""
    mount.mkdir(exist_ok=True)
    data = mount / "..data"
    old = os.readlink(data) if data.is_symlink() else None
    stamp = mount / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{secrets.token_hex(4)}"
    stamp.mkdir()
    for name, content in files.items():
        (stamp / name).write_text(content)
    os.symlink(stamp.name, mount / "..data_tmp")
    os.rename(mount / "..data_tmp", data)
    for name in files:
        if not (mount / name).is_symlink():
            os.symlink(f"..data/{name}", mount / name)
    if old is not None:
        shutil.rmtree(mount / old)


@pytest.fixture
async def site() -> AsyncIterator[SsoSite]:
    async with serve_sso(SsoSite("probe-user", OLD, SEED)) as running:
        yield running


async def runs(served: Served, result: str) -> float:
    labels = frozenset({("scenario", "sso"), ("result", result)})
    return (await served.samples()).get(("prober_scenario_runs_total", labels), 0.0)


async def test_a_swapped_secret_file_reaches_the_next_run_and_never_shows(
    tmp_path: Path, site: SsoSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    swap_secret(credentials, {"password": OLD + "\n"})
    config = tmp_path / "scenarios.yaml"
    config.write_text(
        SSO_SCENARIO.format(
            password="${file:" + str(credentials / "password") + "}", margin=0
        ).replace("interval: 60s", "interval: 1s")
    )
    monkeypatch.setenv("APP_URL", site.app_url)
    monkeypatch.setenv("PROBE_USER", site.user)
    monkeypatch.setenv("MFA_SEED", SEED)
    data = tmp_path / "data"
    async with serving(
        config, tmp_path, data_dir=str(data), config_poll_interval="200ms"
    ) as served:
        await _wait_until(lambda: runs(served, "success"), 90, "no successful run")
        # The IdP rotates the password first: runs fail (and keep their artifacts)...
        site.password = NEW
        await _wait_until(lambda: runs(served, "failure"), 60, "no failed run")
        assert {p for _, p, _ in site.submitted} == {OLD}
        # ...until the Secret is updated, which the next run picks up without a restart.
        succeeded = await runs(served, "success")
        swap_secret(credentials, {"password": NEW + "\n"})

        async def new_success() -> bool:
            return await runs(served, "success") > succeeded

        await _wait_until(new_success, 60, "no successful run after the swap")
        assert site.submitted[-1][1] == NEW
        assert served.process.returncode is None  # the same process throughout

        seen = {
            "metrics": (await served.get("/metrics"))[1],
            "status page": (await served.get("/"))[1],
            "api scenarios": (await served.get("/api/scenarios"))[1],
            "api runs": (await served.get("/api/runs?scenario=sso"))[1],
        }
        listed = json.loads(seen["api runs"])["runs"]
        assert {run["result"] for run in listed} >= {"success", "failure"}
        for run in listed:
            seen[f"api run {run['run_id']}"] = (await served.get(f"/api/runs/{run['run_id']}"))[1]
    seen["logs"] = served.stderr_path.read_text()
    assert "scenario file applied" in seen["logs"]  # the reload that carried the new value
    for where, text in seen.items():
        for value in (OLD, NEW, SEED):
            assert value not in text, f"{value!r} in {where}"
    kept = sorted((data / "artifacts").glob("*-trace.zip"))
    assert kept, "the failed run kept no trace"
    for artifact in (data / "artifacts").iterdir():
        if artifact.is_file():
            assert not leaks(artifact, (OLD, NEW, SEED)), artifact.name
