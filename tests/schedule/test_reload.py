"""Live reload: a ConfigMap symlink swap (or SIGHUP) changes the scenarios without a restart."""

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from prober.contracts.config import load_config
from prober.contracts.secrets import Redactor
from prober.record.history import History, Retention
from prober.record.metrics import ProberMetrics
from prober.schedule.reload import ConfigReloader, fingerprint
from prober.schedule.scheduler import Scheduler
from prober.settings import (
    DEFAULT_PAGE_TIMING_BUCKETS,
    DEFAULT_SCENARIO_BUCKETS,
    DEFAULT_STEP_BUCKETS,
    Settings,
)
from prober.supervise.runner import WorkerRunner
from prober.supervise.wiring import make_runner
from tests.fakes import CountingRecorder
from tests.helpers import STUB_WORKER, publish, stub_scenario, wait_until


@dataclass
class Probe:
    mount: Path
    registry: CollectorRegistry
    scheduler: Scheduler
    reloader: ConfigReloader
    recorder: CountingRecorder
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def runs(self, scenario: str) -> float:
        return self.value("prober_scenario_runs_total", scenario=scenario, result="success") or 0

    def exposition(self) -> str:
        return generate_latest(self.registry).decode()


def scenarios(*entries: str) -> str:
    return "scenarios:" + "".join(entries)


@pytest.fixture
async def probe(tmp_path: Path) -> AsyncIterator[Probe]:
    mount = tmp_path / "prober-scenarios"
    path = publish(
        mount,
        scenarios(
            stub_scenario("keep"),
            stub_scenario("change"),
            stub_scenario("gone", "http://stub.invalid/sleep/2"),
        ),
    )
    config = load_config(path)
    registry = CollectorRegistry()
    metrics = ProberMetrics(
        registry, DEFAULT_SCENARIO_BUCKETS, DEFAULT_STEP_BUCKETS, DEFAULT_PAGE_TIMING_BUCKETS
    )
    metrics.configure(config.scenarios)
    metrics.config_loaded(True, 1.0)
    runner = WorkerRunner(
        "unused", [], Redactor(config.secrets), command=[sys.executable, STUB_WORKER]
    )
    history = await History.open(None, Retention(3600.0, 3600.0), lambda: None)
    recorder = CountingRecorder(metrics, history)
    scheduler = Scheduler(runner.run, recorder, max_concurrency=4, max_start_offset=0)
    scheduler.start(config.scenarios)
    reloader = ConfigReloader(config, scheduler, metrics, runner.redact)
    probe = Probe(mount, registry, scheduler, reloader, recorder)
    probe.tasks.append(asyncio.create_task(reloader.watch(0.1)))
    yield probe
    for task in probe.tasks:
        task.cancel()
    await scheduler.stop(grace=15)
    await reloader.close()
    await history.close()


async def test_configmap_swap_adds_changes_and_removes_scenarios(probe: Probe) -> None:
    await wait_until(lambda: probe.runs("keep") >= 1 and probe.runs("change") >= 1)
    await wait_until(lambda: probe.value("prober_scenario_running", scenario="gone") == 1)
    keep_loop = probe.scheduler._loops["keep"]
    change_loop = probe.scheduler._loops["change"]

    publish(
        probe.mount,
        scenarios(
            stub_scenario("keep"),
            stub_scenario("change", interval="300ms"),
            stub_scenario("fresh"),
        ),
    )
    await wait_until(lambda: probe.runs("fresh") >= 1)

    assert set(probe.scheduler.scenarios) == {"keep", "change", "fresh"}
    assert probe.scheduler._loops["keep"] is keep_loop, "unchanged: same loop, same schedule"
    assert probe.scheduler._loops["change"] is not change_loop, "changed: loop restarted"
    assert probe.value("prober_scenario_interval_seconds", scenario="change") == 0.3
    assert probe.value("prober_config_last_reload_successful") == 1
    reloaded_at = probe.value("prober_config_last_reload_success_timestamp_seconds")
    assert reloaded_at is not None and reloaded_at > 1.0

    # The removed scenario's in-flight run was not cut short: it finished, was
    # recorded, and only then did its series leave /metrics.
    await wait_until(lambda: 'scenario="gone"' not in probe.exposition())
    gone = [r for r in probe.recorder.finished if r is not None and r.scenario == "gone"]
    assert [r.result.value for r in gone] == ["success"]
    assert 'scenario="keep"' in probe.exposition()


async def test_invalid_file_keeps_the_old_scenarios_and_says_why(
    probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    await wait_until(lambda: probe.runs("keep") >= 1)
    before = probe.scheduler.scenarios
    publish(probe.mount, scenarios(stub_scenario("keep", interval="soon")))
    await wait_until(lambda: probe.value("prober_config_last_reload_successful") == 0)

    assert probe.scheduler.scenarios == before
    assert probe.value("prober_config_last_reload_success_timestamp_seconds") == 1.0
    rejected = [r for r in caplog.records if r.getMessage().startswith("scenario file rejected")]
    assert rejected and "interval" in rejected[0].why  # type: ignore[attr-defined]
    runs = probe.runs("keep")
    await wait_until(lambda: probe.runs("keep") > runs)  # still probing

    publish(probe.mount, scenarios(stub_scenario("keep")))
    await wait_until(lambda: probe.value("prober_config_last_reload_successful") == 1)
    assert set(probe.scheduler.scenarios) == {"keep"}


async def test_a_request_reloads_even_when_the_file_looks_unchanged(
    probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="prober.schedule.reload")
    probe.reloader.request()
    await wait_until(lambda: any(getattr(r, "trigger", None) == "SIGHUP" for r in caplog.records))
    assert probe.value("prober_config_last_reload_successful") == 1


def test_fingerprint_follows_the_symlink_swap(tmp_path: Path) -> None:
    path = publish(tmp_path / "mount", scenarios(stub_scenario("a")))
    first = fingerprint(path)
    publish(tmp_path / "mount", scenarios(stub_scenario("a")))  # same bytes, new directory
    assert first is not None and fingerprint(path) != first
    assert fingerprint(tmp_path / "missing.yaml") is None


async def test_scripts_beside_a_configmap_file_still_import_after_a_swap(
    tmp_path: Path, clean_env: None
) -> None:
    """The worker imports scripts from the config's directory: it must be the stable
    mount path, not the timestamped directory the next update deletes."""
    flow = "async def run(page, step, params):\n    pass\n"
    mount = tmp_path / "mount"
    body = "scenarios:\n  - {name: scripted, interval: 1m, timeout: 10s, script: 'flow:run'}\n"
    path = publish(mount, body, {"flow.py": flow})
    sys.path.insert(0, str(mount))  # load_config checks that the module can be found
    try:
        config = load_config(path)
    finally:
        sys.path.remove(str(mount))
    publish(mount, body, {"flow.py": flow})  # the first timestamped directory is gone now

    runner = make_runner(
        Settings(), config, Path("/nonexistent/chromium"), Redactor(config.secrets)
    )
    assert runner.python_path == [str(mount)]
    result = await runner.run(config.scenario("scripted"))
    # The script imported; the run then fails on the browser we pointed nowhere.
    assert result.error is not None and result.error.startswith("browser launch failed")


async def test_an_unexpected_exception_never_ends_the_watcher(
    probe: Probe, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug of ours in loading or applying a file must not leave later files ignored."""
    import prober.schedule.reload

    calls: list[Path] = []

    def load_or_fail(path: Path) -> object:
        calls.append(path)
        if len(calls) == 1:
            raise RecursionError("deep")
        return load_config(path)

    monkeypatch.setattr(prober.schedule.reload, "load_config", load_or_fail)
    publish(probe.mount, scenarios(stub_scenario("keep")))
    await wait_until(lambda: probe.value("prober_config_last_reload_successful") == 0)
    rejected = [r for r in caplog.records if r.getMessage().startswith("scenario file rejected")]
    assert rejected and rejected[-1].why == "unexpected RecursionError"  # type: ignore[attr-defined]

    # An exception while applying, this time: logged, counted, and still watching.
    apply = probe.reloader.apply
    monkeypatch.setattr(probe.reloader, "apply", lambda *a: (_ for _ in ()).throw(KeyError("x")))
    publish(probe.mount, scenarios(stub_scenario("keep"), stub_scenario("one")))
    await wait_until(
        lambda: any(
            r.getMessage().startswith("scenario file reload failed") for r in caplog.records
        )
    )
    assert probe.value("prober_config_last_reload_successful") == 0

    monkeypatch.setattr(probe.reloader, "apply", apply)
    publish(probe.mount, scenarios(stub_scenario("keep"), stub_scenario("two")))
    await wait_until(lambda: probe.value("prober_config_last_reload_successful") == 1)
    # Removed scenarios leave once their run in progress has ended (ConfigReloader._retire).
    await wait_until(lambda: set(probe.scheduler.scenarios) == {"keep", "two"})
