"""Real SSO shapes with a real Chromium: time per component across two origins, and TOTP."""

import json
import re
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from prober.contracts.components import component_durations
from prober.contracts.config import Config, load_config
from prober.contracts.result import Outcome, Reason, RunResult
from prober.contracts.secrets import MASK
from prober.record.metrics import ProberMetrics
from prober.settings import (
    DEFAULT_PAGE_TIMING_BUCKETS,
    DEFAULT_SCENARIO_BUCKETS,
    DEFAULT_STEP_BUCKETS,
)
from prober.supervise.artifacts import ArtifactRetention, ArtifactStore
from prober.supervise.runner import WorkerRunner
from tests.artifact_checks import leaks
from tests.sso_site import SSO_SCENARIO, SsoSite, serve_sso

SEED = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # 160 bits, as IdPs enrol
WRONG_SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
PASSWORD = "idp-pa55word"
DELAY = 2.5

MakeRunner = Callable[..., WorkerRunner]


@pytest.fixture
async def site() -> AsyncIterator[SsoSite]:
    async with serve_sso(SsoSite("probe-user", PASSWORD, SEED)) as running:
        yield running


def config_for(
    tmp_path: Path,
    site: SsoSite,
    seed: str,
    monkeypatch: pytest.MonkeyPatch,
    margin: float = 3.0,
) -> Config:
    monkeypatch.setenv("APP_URL", site.app_url)
    monkeypatch.setenv("PROBE_USER", site.user)
    monkeypatch.setenv("MFA_SEED", seed)
    secret = tmp_path / "credentials" / "password"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text(PASSWORD + "\n")
    path = tmp_path / "scenarios.yaml"
    path.write_text(SSO_SCENARIO.format(password="${file:" + str(secret) + "}", margin=margin))
    return load_config(path)


def recorded(result: RunResult, config: Config) -> CollectorRegistry:
    registry = CollectorRegistry()
    metrics = ProberMetrics(
        registry, DEFAULT_SCENARIO_BUCKETS, DEFAULT_STEP_BUCKETS, DEFAULT_PAGE_TIMING_BUCKETS
    )
    metrics.configure(config.scenarios)
    metrics.record(result, ended_at=0.0)
    return registry


async def test_idp_delay_shows_in_the_idp_component_only_and_components_add_up(
    tmp_path: Path, site: SsoSite, make_runner: MakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No wait for a fresh TOTP window here: up to 3 s of it would blur the IdP's delay.
    config = config_for(tmp_path, site, SEED, monkeypatch, margin=0)
    runner = make_runner(config)
    fast = await runner.run(config.scenario("sso"))
    site.idp_delay = DELAY
    slow = await runner.run(config.scenario("sso"))

    for result in (fast, slow):
        assert result.result is Outcome.SUCCESS, result.error
        assert [(s.name, s.component) for s in result.steps] == [
            ("app_page_loaded", "app"),
            ("idp_page_loaded", "idp"),
            ("idp_signed_in", "idp"),
            ("back_in_app", "app"),
        ]
        assert [s["component"] for s in result.to_json()["steps"]] == ["app", "idp", "idp", "app"]
    before, after = component_durations(fast, "app"), component_durations(slow, "app")
    assert after["idp"] >= DELAY
    assert after["idp"] - before["idp"] > DELAY - 0.5
    assert after["app"] < before["app"] + DELAY - 0.5, (before, after)

    # The exported gauges: the run's components add up to its duration.
    registry = recorded(slow, config)
    parts = {
        c: registry.get_sample_value(
            "prober_component_last_duration_seconds", {"scenario": "sso", "component": c}
        )
        for c in ("app", "idp")
    }
    total = registry.get_sample_value("prober_scenario_last_duration_seconds", {"scenario": "sso"})
    assert parts["app"] and parts["idp"] and total
    assert parts["app"] + parts["idp"] == pytest.approx(total, abs=1e-9)
    assert parts["idp"] == pytest.approx(after["idp"])


async def test_totp_right_seed_signs_in_and_the_code_is_masked(
    tmp_path: Path, site: SsoSite, make_runner: MakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_for(tmp_path, site, SEED, monkeypatch)
    result = await make_runner(config).run(config.scenario("sso"))
    assert result.result is Outcome.SUCCESS, result.error
    (_, password, code) = site.submitted[-1]
    assert password == PASSWORD and re.fullmatch(r"\d{6}", code)
    assert SEED in config.secrets


async def test_totp_wrong_seed_fails_the_step_as_an_assertion_and_leaks_nothing(
    tmp_path: Path, site: SsoSite, make_runner: MakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_for(tmp_path, site, WRONG_SEED, monkeypatch)
    store = ArtifactStore(tmp_path / "artifacts", ArtifactRetention(3600.0, 1 << 30))
    result = await make_runner(config, artifacts=store).run(config.scenario("sso"))

    assert result.result is Outcome.FAILURE, result.error
    assert (result.failed_step, result.reason) == ("idp_signed_in", Reason.ASSERTION)
    assert result.steps[-1].component == "idp"
    (_, _, code) = site.submitted[-1]
    assert re.fullmatch(r"\d{6}", code)
    # The code the browser sent, where a value would be written, and the seed: nowhere.
    as_value = [f"otp={code}", f'"{code}"', f'\\"{code}\\"', f">{code}<"]
    emitted = json.dumps(result.to_json())
    assert not [s for s in as_value if s in emitted] and WRONG_SEED not in emitted
    assert any(name.endswith("-trace.zip") for name in result.artifacts)
    masked_post = False
    for name in result.artifacts:
        artifact = store.directory / name
        assert not leaks(artifact, (WRONG_SEED, PASSWORD)), name
        blobs = (
            [zipfile.ZipFile(artifact).read(n) for n in zipfile.ZipFile(artifact).namelist()]
            if name.endswith(".zip")
            else [artifact.read_bytes()]
        )
        found = [s for blob in blobs for s in as_value if s.encode() in blob]
        assert not found, (name, found)
        masked_post |= any(f"otp={MASK}".encode() in blob for blob in blobs)
    # The trace holds the sign-in POST, so the search above looked where the code was.
    assert masked_post
