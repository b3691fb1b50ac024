"""Run history: survives restarts, degrades to memory on a broken database, retention."""

import logging
import sqlite3
import time
from pathlib import Path

import pytest

from prober.contracts.result import (
    FailedRequest,
    Outcome,
    PageTiming,
    Reason,
    RunResult,
    StepRequests,
    StepResult,
)
from prober.record.history import DB_NAME, History, MemoryStore, Retention, RunRecord, SqliteStore

DAY = 86400.0
RETENTION = Retention(success_seconds=7 * DAY, failure_seconds=30 * DAY)
NOW = time.time()


def result(run_id: str, outcome: Outcome = Outcome.SUCCESS, scenario: str = "login") -> RunResult:
    failed = outcome is not Outcome.SUCCESS
    return RunResult(
        scenario=scenario,
        run_id=run_id,
        result=outcome,
        duration_seconds=1.5,
        started_at=1000.0,
        steps=(StepResult("home", 0.5, True), StepResult("login", 1.0, not failed)),
        failed_step="login" if failed else None,
        reason=Reason.SELECTOR if failed else None,
        error="no button" if failed else None,
        browser_launch_seconds=0.3,
        artifacts=(f"{run_id}-screenshot.png",) if failed else (),
        attempt=2 if failed else 1,
        artifact_error="OSError: disk full" if failed else None,
        page_timings=(
            PageTiming("home", {"ttfb": 0.02, "load": 0.31}, cumulative_layout_shift=0.01),
            PageTiming("login", {"ttfb": 0.05}),
        ),
        request_counts=(StepRequests("home", 5), StepRequests("login", 3, network=int(failed))),
        failed_requests=(
            (FailedRequest("login", "POST", "https://idp.example/token", error="net::ERR_FAILED"),)
            if failed
            else ()
        ),
    )


class Degraded:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


async def test_history_survives_a_restart(tmp_path: Path) -> None:
    history = await History.open(tmp_path, RETENTION, Degraded())
    history.record(result("r1"), ended_at=NOW)
    history.record(result("r2", Outcome.FAILURE), ended_at=NOW + 1)
    await history.close()

    reopened = await History.open(tmp_path, RETENTION, Degraded())
    try:
        assert not reopened.degraded
        assert [r.run_id for r in await reopened.runs()] == ["r2", "r1"]
        # Every field comes back as it went in.
        assert await reopened.get("r2") == RunRecord(result("r2", Outcome.FAILURE), NOW + 1)
        assert [r.run_id for r in await reopened.runs(results=[Outcome.FAILURE])] == ["r2"]
        assert await reopened.runs(scenario="other") == []
        assert await reopened.get("missing") is None
    finally:
        await reopened.close()


async def test_corrupt_database_degrades_to_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not a database, it is a text file\n" * 200)
    degraded = Degraded()
    history = await History.open(tmp_path, RETENTION, degraded)
    try:
        assert history.degraded and degraded.calls == 1
        assert "run history degraded to memory" in caplog.text
        history.record(result("r1"), ended_at=NOW)
        assert [r.run_id for r in await history.runs()] == ["r1"]
    finally:
        await history.close()
    # Left for the operator to inspect, not overwritten.
    assert (tmp_path / DB_NAME).read_bytes().startswith(b"this is not a database")


async def test_unusable_data_dir_degrades(tmp_path: Path) -> None:
    """A data dir that cannot be created (here: a file is in the way; root ignores modes)."""
    (tmp_path / "data").write_text("")
    history = await History.open(tmp_path / "data", RETENTION, Degraded())
    assert history.degraded
    await history.close()


async def test_read_only_database_file_degrades_on_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database that opens but cannot be written (read-only mount) degrades at the write."""
    history = await History.open(tmp_path, RETENTION, Degraded())
    await history.close()
    degraded = Degraded()
    history = await History.open(tmp_path, RETENTION, degraded)

    def read_only(store: SqliteStore) -> None:
        """What a read-only volume gives; swapped on the history thread that owns it."""
        store._db.close()
        store._db = sqlite3.connect(f"file:{tmp_path / DB_NAME}?mode=ro", uri=True)

    await history._call(read_only)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR):
        history.record(result("r1"), ended_at=NOW)
        assert [r.run_id for r in await history.runs()] == ["r1"]
    assert history.degraded and degraded.calls == 1
    await history.close()


async def test_without_data_dir_history_is_in_memory_and_not_degraded() -> None:
    degraded = Degraded()
    history = await History.open(None, RETENTION, degraded)
    history.record(result("r1"), ended_at=NOW)
    assert [r.run_id for r in await history.runs()] == ["r1"]
    assert not history.degraded and degraded.calls == 0
    await history.close()


@pytest.mark.parametrize("data_dir", [True, False], ids=["sqlite", "memory"])
async def test_retention_keeps_failures_longer(tmp_path: Path, data_dir: bool) -> None:
    now = [100 * DAY]
    history = await History.open(
        tmp_path if data_dir else None, RETENTION, Degraded(), clock=lambda: now[0]
    )
    try:
        history.record(result("old-success"), ended_at=now[0] - 8 * DAY)
        history.record(result("old-failure", Outcome.FAILURE), ended_at=now[0] - 8 * DAY)
        history.record(result("ancient-timeout", Outcome.TIMEOUT), ended_at=now[0] - 31 * DAY)
        history.record(result("new-success"), ended_at=now[0] - DAY)
        await history.runs()  # the writes above are done (one thread, in order)
        now[0] += 3600  # pruning runs at most every 10 minutes; this write triggers it
        history.record(result("newest"), ended_at=now[0])
        kept = {r.run_id for r in await history.runs()}
        assert kept == {"old-failure", "new-success", "newest"}
    finally:
        await history.close()


def test_memory_store_drops_oldest_successes_first_when_full() -> None:
    store = MemoryStore(max_runs=3)
    store.add(RunRecord(result("s1"), 1.0))
    store.add(RunRecord(result("f1", Outcome.FAILURE), 2.0))
    store.add(RunRecord(result("s2"), 3.0))
    store.add(RunRecord(result("s3"), 4.0))
    assert [r.run_id for r in store.query(None, None, 10)] == ["s3", "s2", "f1"]


# Schema version 1 as prober 0.1 created it, verbatim: the migration must take this.
V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    scenario TEXT NOT NULL,
    result TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL NOT NULL,
    duration_seconds REAL NOT NULL,
    failed_step TEXT,
    reason TEXT,
    error TEXT,
    browser_launch_seconds REAL,
    attempt INTEGER NOT NULL,
    steps TEXT NOT NULL,
    artifacts TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_scenario ON runs (scenario, ended_at);
CREATE INDEX IF NOT EXISTS runs_by_end ON runs (ended_at);
PRAGMA user_version = 1;
"""


async def test_a_version_1_history_opens_and_keeps_its_runs(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / DB_NAME)
    old.executescript(V1_SCHEMA)
    old.executemany(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            ("v1-ok", "login", "success", 1000.0, NOW - 60, 1.5, None, None, None, 0.3, 1,
             '[{"name": "home", "duration_seconds": 0.5, "ok": true}]', "[]"),
            ("v1-bad", "login", "failure", 1000.0, NOW - 30, 2.5, "login", "selector",
             "no button", None, 2,
             '[{"name": "login", "duration_seconds": 2.5, "ok": false}]',
             '["v1-bad-screenshot.png"]'),
        ],
    )  # fmt: skip
    old.commit()
    old.close()

    history = await History.open(tmp_path, RETENTION, Degraded())
    try:
        assert not history.degraded
        assert [r.run_id for r in await history.runs()] == ["v1-bad", "v1-ok"]
        assert await history.get("v1-bad") == RunRecord(
            RunResult(
                scenario="login",
                run_id="v1-bad",
                result=Outcome.FAILURE,
                duration_seconds=2.5,
                started_at=1000.0,
                steps=(StepResult("login", 2.5, False),),
                failed_step="login",
                reason=Reason.SELECTOR,
                error="no button",
                artifacts=("v1-bad-screenshot.png",),
                attempt=2,
            ),
            NOW - 30,
        )
        assert [r.run_id for r in await history.runs(results=[Outcome.SUCCESS])] == ["v1-ok"]
        # New runs keep every field, next to the migrated ones.
        history.record(result("r2", Outcome.FAILURE), ended_at=NOW)
        assert await history.get("r2") == RunRecord(result("r2", Outcome.FAILURE), NOW)
    finally:
        await history.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    try:
        assert db.execute("PRAGMA user_version").fetchone() == (2,)
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        assert "runs_v1" not in tables and {"runs_by_scenario", "runs_by_end"} <= tables
    finally:
        db.close()


def test_a_database_from_a_newer_prober_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("PRAGMA user_version = 3")
    db.close()
    with pytest.raises(sqlite3.DatabaseError, match="schema version 3 is newer"):
        SqliteStore(tmp_path / DB_NAME)


@pytest.mark.parametrize("data_dir", [True, False], ids=["sqlite", "memory"])
async def test_tally_counts_a_scenarios_runs_by_result_since_a_time(
    tmp_path: Path, data_dir: bool
) -> None:
    """The status page's availability windows: both stores count the same way."""
    history = await History.open(
        tmp_path if data_dir else None, Retention(3600.0, 7200.0), lambda: None
    )
    now = time.time()
    for run_id, outcome, age in (
        ("a", Outcome.SUCCESS, 10),
        ("b", Outcome.SUCCESS, 20),
        ("c", Outcome.FAILURE, 30),
        ("d", Outcome.ERROR, 40),
        ("e", Outcome.FAILURE, 500),  # before the window
    ):
        history.record(result(run_id, outcome), ended_at=now - age)
    history.record(result("f", scenario="other"), ended_at=now)
    counts = await history.tally("login", since=now - 100)
    assert counts == {Outcome.SUCCESS: 2, Outcome.FAILURE: 1, Outcome.ERROR: 1}
    assert await history.tally("nothing", since=0) == {}
    assert history.retention == Retention(3600.0, 7200.0)
    await history.close()
