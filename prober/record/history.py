"""Run history: every run in SQLite under the data directory; failures are kept longer.

SQLite because it is one file in the data directory, needs no server, survives restarts
and answers "the last 50 failures of X" from an index. All database work happens on one
dedicated thread: a slow disk never stalls the event loop, writes stay in order, and the
connection is only ever touched by the thread that opened it.

History is a debugging aid; probing is the product. So when the database cannot be
opened or an operation on it fails (a corrupt file, a full or read-only disk), history
switches to memory for the rest of the process's life, says so once in the log and in
`prober_history_degraded`, and probing goes on. The broken file is left where it is for
the operator to inspect; removing it lets the next start create a fresh one.

A single row that cannot be read back (edited by hand, written by a newer prober, a
damaged page that SQLite still returns) is not a broken database: the row is skipped,
logged once per run id and counted in `prober_history_unreadable_rows_total`, and every
other run is still served. `prober_history_degraded` stays 0, since history still works.
"""

import asyncio
import contextlib
import json
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from prober.contracts.result import Outcome, Reason, RunResult, StepResult

log = logging.getLogger(__name__)

DB_NAME = "history.sqlite3"
PRUNE_EVERY_SECONDS = 600.0
# In memory (no data dir, or degraded) the age limits alone could hold a lot of runs of a
# scenario with a short interval; past this many, the oldest successes go first.
MEMORY_MAX_RUNS = 10_000
# 2: the whole run as JSON (RunResult.to_json); 1 kept a subset of fields in columns.
_SCHEMA_VERSION = 2
T = TypeVar("T")


@dataclass(frozen=True)
class RunRecord:
    """A finished run as history keeps it: the RunResult plus when it ended."""

    result: RunResult
    ended_at: float

    @property
    def run_id(self) -> str:
        return self.result.run_id

    @property
    def scenario(self) -> str:
        return self.result.scenario

    @property
    def ok(self) -> bool:
        return self.result.ok


@dataclass(frozen=True)
class Retention:
    """How long runs are kept, in seconds: failures longer, so the last one stays visible."""

    success_seconds: float
    failure_seconds: float


class _Store(Protocol):
    def add(self, record: RunRecord) -> None: ...
    def get(self, run_id: str) -> RunRecord | None: ...
    def query(
        self, scenario: str | None, results: Collection[Outcome] | None, limit: int
    ) -> list[RunRecord]: ...
    def tally(self, scenario: str, since: float) -> dict[Outcome, int]: ...
    def prune(self, success_before: float, failure_before: float) -> int: ...
    def close(self) -> None: ...


class MemoryStore:
    """Runs in a list, oldest first; used without a data dir and when SQLite fails."""

    def __init__(self, max_runs: int = MEMORY_MAX_RUNS) -> None:
        self._runs: list[RunRecord] = []
        self._max_runs = max_runs

    def add(self, record: RunRecord) -> None:
        self._runs.append(record)
        if len(self._runs) > self._max_runs:
            oldest_success = next((i for i, r in enumerate(self._runs) if r.ok), 0)
            del self._runs[oldest_success]

    def get(self, run_id: str) -> RunRecord | None:
        return next((r for r in self._runs if r.run_id == run_id), None)

    def query(
        self, scenario: str | None, results: Collection[Outcome] | None, limit: int
    ) -> list[RunRecord]:
        found = []
        for record in reversed(self._runs):
            if (scenario is None or record.scenario == scenario) and (
                results is None or record.result.result in results
            ):
                found.append(record)
                if len(found) == limit:
                    break
        return found

    def tally(self, scenario: str, since: float) -> dict[Outcome, int]:
        counts: dict[Outcome, int] = {}
        for record in self._runs:
            if record.scenario == scenario and record.ended_at >= since:
                counts[record.result.result] = counts.get(record.result.result, 0) + 1
        return counts

    def prune(self, success_before: float, failure_before: float) -> int:
        before = len(self._runs)
        self._runs = [
            r for r in self._runs if r.ended_at >= (success_before if r.ok else failure_before)
        ]
        return before - len(self._runs)

    def close(self) -> None:
        self._runs.clear()


class SqliteStore:
    """One table of runs: the columns that queries filter on, and the whole run as JSON.

    The JSON is `RunResult.to_json`, the same serialisation `prober run` prints and the
    API answers with, so a field added to RunResult is kept here without a migration.
    """

    def __init__(self, path: Path, on_unreadable: Callable[[], None] = lambda: None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Run ids of rows already reported unreadable: each is logged and counted once,
        # however often the API reads past it.
        self._unreadable: set[str] = set()
        self._on_unreadable = on_unreadable
        self._db = sqlite3.connect(path, isolation_level=None)  # autocommit: one txn per run
        try:
            # WAL + NORMAL: a write is an append, durable across a process crash (not
            # necessarily a power cut, which for a history of probe runs is fine).
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"schema version {version} is newer than this prober understands"
                )
            if version == 1:
                self._migrate_from_v1()
            self._db.executescript(_SCHEMA)
        except BaseException:
            self._db.close()
            raise

    def _migrate_from_v1(self) -> None:
        """Version 1 kept some fields in columns and dropped the rest: move every run over.

        One transaction: a migration cut short leaves the version-1 database as it was.
        """
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DROP INDEX IF EXISTS runs_by_scenario")
            db.execute("DROP INDEX IF EXISTS runs_by_end")
            db.execute("ALTER TABLE runs RENAME TO runs_v1")
            db.execute(_TABLES)
            for row in db.execute("SELECT * FROM runs_v1").fetchall():
                self._insert(_from_v1_row(row))
            db.execute("DROP TABLE runs_v1")
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        log.info("run history migrated to schema version 2", extra={"runs": self._count()})

    def add(self, record: RunRecord) -> None:
        self._insert(record)

    def _insert(self, record: RunRecord) -> None:
        r = record.result
        self._db.execute(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?)",
            (r.run_id, r.scenario, r.result.value, record.ended_at, json.dumps(r.to_json())),
        )

    def _count(self) -> int:
        count: int = self._db.execute("SELECT count(*) FROM runs").fetchone()[0]
        return count

    def get(self, run_id: str) -> RunRecord | None:
        rows = self._db.execute(
            "SELECT run_id, run, ended_at FROM runs WHERE run_id = ?", (run_id,)
        )
        return next(self._readable(rows), None)

    def query(
        self, scenario: str | None, results: Collection[Outcome] | None, limit: int
    ) -> list[RunRecord]:
        where, args = [], []
        if scenario is not None:
            where.append("scenario = ?")
            args.append(scenario)
        if results is not None:
            where.append(f"result IN ({', '.join('?' * len(results))})")
            args.extend(outcome.value for outcome in results)
        sql = "SELECT run_id, run, ended_at FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        # No LIMIT: the cursor is read lazily up to `limit` readable rows, so a skipped row
        # does not make the answer shorter than asked.
        sql += " ORDER BY ended_at DESC"
        found = []
        for record in self._readable(self._db.execute(sql, args)):
            found.append(record)
            if len(found) == limit:
                break
        return found

    def _readable(self, rows: Iterable[tuple[Any, Any, Any]]) -> Iterator[RunRecord]:
        """The rows that decode to a valid run; the others are reported once and skipped."""
        for run_id, run, ended_at in rows:
            try:
                yield _from_row(run, ended_at)
            except (ValueError, TypeError, ValidationError) as exc:
                key = str(run_id)
                if key in self._unreadable:
                    continue
                self._unreadable.add(key)
                # The exception's text is not logged: it quotes the row, which may hold
                # anything; its type and the run id are enough to find the row.
                log.error(
                    "skipping a run in history that cannot be read",
                    extra={"run_id": key[:64], "why": type(exc).__name__},
                )
                self._on_unreadable()

    def tally(self, scenario: str, since: float) -> dict[Outcome, int]:
        rows = self._db.execute(
            "SELECT result, count(*) FROM runs WHERE scenario = ? AND ended_at >= ?"
            " GROUP BY result",
            (scenario, since),
        ).fetchall()
        # A row with a result this version does not know counts for nothing: `runs`
        # skips and reports it (see _unreadable), and availability must not fail on it.
        known = {outcome.value: outcome for outcome in Outcome}
        return {known[result]: count for result, count in rows if result in known}

    def prune(self, success_before: float, failure_before: float) -> int:
        cursor = self._db.execute(
            "DELETE FROM runs WHERE (result = 'success' AND ended_at < ?)"
            " OR (result != 'success' AND ended_at < ?)",
            (success_before, failure_before),
        )
        return cursor.rowcount

    def close(self) -> None:
        self._db.close()


_TABLES = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    scenario TEXT NOT NULL,
    result TEXT NOT NULL,
    ended_at REAL NOT NULL,
    run TEXT NOT NULL
);
"""
_SCHEMA = (
    _TABLES
    + """
CREATE INDEX IF NOT EXISTS runs_by_scenario ON runs (scenario, ended_at);
CREATE INDEX IF NOT EXISTS runs_by_end ON runs (ended_at);
"""
    + f"PRAGMA user_version = {_SCHEMA_VERSION};\n"
)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:20]}")
    return value


def _reject_constant(text: str) -> float:
    raise ValueError(f"not a number: {text}")


def _from_row(run: Any, ended_at: Any) -> RunRecord:
    """A stored run, validated: wrong types, unknown values and non-finite numbers raise."""
    if not isinstance(run, str) or isinstance(ended_at, (str, bytes)) or ended_at is None:
        raise TypeError("run must be JSON text and ended_at a number")
    data = json.loads(run, parse_float=_finite, parse_constant=_reject_constant)
    if not isinstance(data, dict):
        raise TypeError("a stored run must be a JSON object")
    return RunRecord(RunResult.from_json(data), ended_at=_finite(str(ended_at)))


def _from_v1_row(row: tuple[Any, ...]) -> RunRecord:
    """A run as schema version 1 stored it (no page timings, no artifact error)."""
    (run_id, scenario, result, started, ended, duration, failed, reason, error, launch,
     attempt, steps, artifacts) = row  # fmt: skip
    return RunRecord(
        RunResult(
            scenario=scenario,
            run_id=run_id,
            result=Outcome(result),
            duration_seconds=duration,
            started_at=started,
            steps=tuple(StepResult(**step) for step in json.loads(steps)),
            failed_step=failed,
            reason=Reason(reason) if reason else None,
            error=error,
            browser_launch_seconds=launch,
            artifacts=tuple(json.loads(artifacts)),
            attempt=attempt,
        ),
        ended_at=ended,
    )


class History:
    """The store behind a single worker thread, falling back to memory if SQLite fails."""

    def __init__(
        self,
        store: _Store,
        retention: Retention,
        on_degraded: Callable[[], None],
        executor: ThreadPoolExecutor,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._retention = retention
        self._on_degraded = on_degraded
        self._executor = executor
        self._clock = clock
        self._last_prune = float("-inf")
        self.degraded = False

    @classmethod
    async def open(
        cls,
        data_dir: Path | None,
        retention: Retention,
        on_degraded: Callable[[], None],
        clock: Callable[[], float] = time.time,
        on_unreadable_row: Callable[[], None] = lambda: None,
    ) -> "History":
        """SQLite in `data_dir`, memory without one; a database that fails to open degrades.

        `on_unreadable_row` is called once for each stored run that cannot be read back.
        """
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history")
        loop = asyncio.get_running_loop()
        history = cls(MemoryStore(), retention, on_degraded, executor, clock)
        if data_dir is None:
            log.info("no data directory (PROBER_DATA_DIR): run history is kept in memory only")
            return history
        path = data_dir / DB_NAME
        try:
            history._store = await loop.run_in_executor(
                executor, SqliteStore, path, on_unreadable_row
            )
        except (sqlite3.Error, OSError) as exc:
            history._degrade(f"cannot open {path}: {exc}")
        return history

    def record(self, result: RunResult, ended_at: float) -> None:
        """Queue the write and return at once; reads queued later see it (one thread)."""
        self._executor.submit(self._add, RunRecord(result, ended_at))

    def run_started(self, scenario: str, run_id: str) -> None:
        """A run sink (prober.record.sinks); history keeps finished runs only."""

    def run_ended(
        self, scenario: str, run_id: str, result: RunResult | None, ended_at: float
    ) -> None:
        """A run sink: keep the verdict; a run cancelled at shutdown has none."""
        if result is not None:
            self.record(result, ended_at)

    async def get(self, run_id: str) -> RunRecord | None:
        return await self._call(lambda store: store.get(run_id))

    async def runs(
        self,
        scenario: str | None = None,
        results: Collection[Outcome] | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Newest first."""
        return await self._call(lambda store: store.query(scenario, results, limit))

    async def tally(self, scenario: str, since: float) -> dict[Outcome, int]:
        """Runs of `scenario` that ended at or after `since`, counted by result (SQL, indexed)."""
        return await self._call(lambda store: store.tally(scenario, since))

    @property
    def retention(self) -> Retention:
        """How far back history reaches: a window longer than this is not all in it."""
        return self._retention

    async def close(self) -> None:
        """Wait for queued writes, then close the database."""
        await self._call(lambda store: store.close())
        self._executor.shutdown(wait=False)

    async def _call(self, operation: Callable[[_Store], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._guarded, operation)

    def _add(self, record: RunRecord) -> None:
        try:
            self._guarded(lambda store: store.add(record))
            now = self._clock()
            if now - self._last_prune >= PRUNE_EVERY_SECONDS:
                self._last_prune = now
                self._guarded(
                    lambda store: store.prune(
                        now - self._retention.success_seconds,
                        now - self._retention.failure_seconds,
                    )
                )
        except Exception:  # nobody awaits a write: say so here, or it vanishes
            log.exception("cannot record run in history", extra={"run_id": record.run_id})

    def _guarded(self, operation: Callable[[_Store], T]) -> T:
        """Run on the history thread; on a database error, degrade and run it in memory."""
        try:
            return operation(self._store)
        except sqlite3.Error as exc:
            self._degrade(f"database error: {exc}")
            return operation(self._store)

    def _degrade(self, why: str) -> None:
        if isinstance(self._store, SqliteStore):
            with contextlib.suppress(sqlite3.Error):
                self._store.close()
        self._store = MemoryStore()
        self.degraded = True
        log.error(
            "run history degraded to memory: runs are no longer kept across restarts",
            extra={"why": why},
        )
        self._on_degraded()
