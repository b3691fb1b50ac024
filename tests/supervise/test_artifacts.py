"""The parent's side of artifacts: listing, staging clean-up and retention, no browser."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prober.contracts.artifacts import STAGING
from prober.contracts.config import Scenario
from prober.contracts.result import Outcome
from prober.contracts.secrets import Redactor
from prober.supervise.artifacts import ArtifactRetention, ArtifactStore
from prober.supervise.runner import WorkerRunner

STUB = Path(__file__).parents[1] / "stubs" / "artifact_stub.py"
NOW = 1_800_000_000.0
DAY = 86400.0


def store_at(directory: Path, max_age: float = 7 * DAY, max_bytes: int = 1 << 30) -> ArtifactStore:
    return ArtifactStore(directory, ArtifactRetention(max_age, max_bytes), clock=lambda: NOW)


def make_run(directory: Path, run_id: str, age: float, sizes: dict[str, int]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for kind, size in sizes.items():
        path = directory / f"{run_id}-{kind}"
        path.write_bytes(b"x" * size)
        os.utime(path, (NOW - age, NOW - age))


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_file())


async def test_worker_killed_mid_write_leaves_only_complete_reported_files(tmp_path: Path) -> None:
    store = store_at(tmp_path / "artifacts")
    runner = WorkerRunner(
        "/usr/bin/chromium",
        [],
        Redactor(["hunter2-secret"]),
        command=[sys.executable, str(STUB)],
        artifacts=store,
    )
    scenario = Scenario.model_validate(
        {
            "name": "stubbed",
            "interval": "1m",
            # Room for the stub's start-up: it imports the protocol, like the worker.
            "timeout": "4s",
            "steps": [{"name": "only", "actions": [{"goto": "http://127.0.0.1:9/"}]}],
        }
    )
    result = await runner.run(scenario)

    assert result.result is Outcome.TIMEOUT
    assert result.failed_step == "slow_step"
    assert result.artifacts == (f"{result.run_id}-screenshot.png",)
    assert names(store.directory) == [f"{result.run_id}-screenshot.png"]
    # The unscrubbed partial file went with the staging directory.
    assert list((store.directory / STAGING).iterdir()) == []


def test_runs_past_the_age_limit_are_deleted_whole(tmp_path: Path) -> None:
    store = store_at(tmp_path, max_age=7 * DAY)
    make_run(tmp_path, "old", 8 * DAY, {"screenshot.png": 10, "trace.zip": 10})
    make_run(tmp_path, "recent", 6 * DAY, {"screenshot.png": 10})

    store.prune()

    assert names(tmp_path) == ["recent-screenshot.png"]


def test_size_limit_deletes_oldest_runs_first_and_never_the_current_one(tmp_path: Path) -> None:
    store = store_at(tmp_path, max_bytes=250)
    make_run(tmp_path, "r1", 40.0, {"trace.zip": 100})
    make_run(tmp_path, "r2", 30.0, {"trace.zip": 100})
    make_run(tmp_path, "r3", 20.0, {"trace.zip": 80, "screenshot.png": 20})
    make_run(tmp_path, "r4", 10.0, {"trace.zip": 60})

    store.prune(keep="r4")
    assert names(tmp_path) == ["r3-screenshot.png", "r3-trace.zip", "r4-trace.zip"]

    # A single run over the limit is kept while it is the current one.
    store_at(tmp_path, max_bytes=10).prune(keep="r4")
    assert names(tmp_path) == ["r4-trace.zip"]


def test_stale_staging_is_removed_and_foreign_files_are_left_alone(tmp_path: Path) -> None:
    stale, fresh = tmp_path / STAGING / "stale-run", tmp_path / STAGING / "live-run"
    for path in (stale, fresh):
        path.mkdir(parents=True)
        (path / "raw-trace.zip").write_bytes(b"unscrubbed")
    os.utime(stale, (NOW - 2 * 3600, NOW - 2 * 3600))
    os.utime(fresh, (NOW - 60, NOW - 60))
    (tmp_path / "README").write_text("not an artifact")

    store_at(tmp_path, max_bytes=0).prune()

    assert sorted(p.name for p in (tmp_path / STAGING).iterdir()) == ["live-run"]
    assert names(tmp_path) == ["README"]


def test_trouble_is_logged_when_it_starts_and_once_it_has_really_ended(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A nearly full disk: a large trace fails, a small screenshot fits, and so on."""
    store = store_at(tmp_path)
    caplog.set_level(logging.INFO, logger="prober.supervise.artifacts")
    full = "OSError: [Errno 28] No space left on device"

    def kept(run_id: str) -> tuple[str, None]:
        (tmp_path / f"{run_id}-screenshot.png").write_bytes(b"png")
        return run_id, None

    runs = [("a", full), kept("b"), ("c", full), kept("d"), ("e", full), kept("f"), kept("g")]
    for run_id, error in runs:
        store.finish_run(run_id, [f"{run_id}-screenshot.png"] if error is None else [], error)
    for run_id in ("ok1", "ok2"):  # successes: nothing to keep, so no evidence either way
        store.finish_run(run_id, [], None)
    assert [(r.levelname, r.message) for r in caplog.records] == [
        ("WARNING", "cannot keep failure artifacts; probing continues without them"),
    ]
    store.finish_run("h", ["h-screenshot.png"], kept("h")[1])
    assert [(r.levelname, r.message) for r in caplog.records][1:] == [
        ("INFO", "failure artifacts can be kept again"),
    ]


def test_a_run_that_keeps_nothing_has_no_artifact_problem(tmp_path: Path) -> None:
    """A store that cannot even be pruned (read-only) is not a successful run's problem."""
    point = tmp_path / "mount"
    point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(point)], check=False).returncode:
        pytest.skip("cannot mount tmpfs here")
    try:
        make_run(point / "artifacts", "old", age=DAY, sizes={"trace.zip": 10})
        subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
        store = store_at(point / "artifacts", max_bytes=0)
        assert store.finish_run("success", [], None) == ((), None)
        _, error = store.finish_run("failed", ["failed-trace.zip"], None)
        assert error is not None and "cannot prune artifacts" in error
    finally:
        subprocess.run(["umount", str(point)], check=True)
