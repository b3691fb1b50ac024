"""Failure artifacts on disk, the parent's side: listing, clean-up, retention.

The layout both processes share is prober.contracts.artifacts. A file appears under its
final name only by an atomic rename, after it was written in full and scrubbed of
secrets; so anything with a final name is complete and safe to serve. The worker's
scratch space holds unscrubbed data (the browser writes its trace there), so the parent
deletes it as soon as the worker is gone, however the run ended.

Artifacts are evidence, not the probe: a full or read-only disk is logged once, counted
(`RunResult.artifact_error` feeds a metric) and otherwise ignored. Only runs that had
something to keep count and change that state: a successful run keeps nothing, so it
neither fails on a read-only disk nor proves a full one has recovered. And "can be kept
again" waits for RECOVERY_RUNS runs in a row that kept theirs: on a nearly full disk a
small screenshot fits where a large trace did not, and the log would flip every run.
"""

import logging
import re
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from prober.contracts.artifacts import STAGING, staging_dir

log = logging.getLogger(__name__)

# A staging directory this old belongs to a parent that died mid-run.
STALE_STAGING_SECONDS = 3600.0
# Runs in a row that kept their artifacts before a failing store is said to work again.
RECOVERY_RUNS = 3
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class ArtifactRetention:
    """Keep runs' artifacts at most `max_age` seconds and `max_bytes` in total."""

    max_age: float
    max_bytes: int


class ArtifactStore:
    """The parent's view of `{data_dir}/artifacts/`; one instance per process."""

    def __init__(
        self, directory: Path, retention: ArtifactRetention, clock: Callable[[], float] = time.time
    ) -> None:
        self.directory = directory
        self.retention = retention
        self._clock = clock
        self._failing = False
        self._good_runs = 0

    def finish_run(
        self, run_id: str, reported: Iterable[str], error: str | None
    ) -> tuple[tuple[str, ...], str | None]:
        """After the worker is gone: (artifacts that exist, the run's artifact problem).

        `error` is the worker's. A problem of the store itself (removing the staging
        directory, pruning) is the run's only if the run kept or tried to keep artifacts.
        Blocking file-system work; call it in a thread.
        """
        reported = tuple(reported)
        wanted = bool(reported) or error is not None
        store_error = None
        try:
            shutil.rmtree(staging_dir(self.directory, run_id))
        except FileNotFoundError:
            pass
        except OSError as exc:
            store_error = f"cannot remove the staging directory: {exc}"
        try:
            self.prune(keep=run_id)
        except OSError as exc:
            store_error = store_error or f"cannot prune artifacts: {exc}"
        names = tuple(
            name
            for name in dict.fromkeys(reported)
            if _belongs(name, run_id) and (self.directory / name).is_file()
        )
        if wanted:
            error = error or store_error
            self._note(run_id, error)
        return names, error

    def prune(self, keep: str | None = None) -> None:
        """Delete whole runs, oldest first, past the age limit or over the size limit.

        The run `keep` (the one that just finished) is never deleted, so its listing
        stays true even when a single run is bigger than the size limit.
        """
        if not self.directory.is_dir():
            return
        runs: dict[str, list[tuple[Path, float, int]]] = defaultdict(list)
        staging = self.directory / STAGING
        for path in self.directory.iterdir():
            if path == staging or not path.is_file():
                continue
            run_id = _run_of(path.name)
            if run_id is None:
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # deleted meanwhile (another prober on this volume)
                continue
            runs[run_id].append((path, stat.st_mtime, stat.st_size))
        now = self._clock()
        oldest_first = sorted(runs.items(), key=lambda item: max(m for _, m, _ in item[1]))
        total = sum(size for files in runs.values() for _, _, size in files)
        for run_id, files in oldest_first:
            too_old = now - max(m for _, m, _ in files) > self.retention.max_age
            if run_id == keep or not (too_old or total > self.retention.max_bytes):
                continue
            for path, _, size in files:
                path.unlink(missing_ok=True)
                total -= size
        self._prune_staging(staging, now)

    def _prune_staging(self, staging: Path, now: float) -> None:
        if not staging.is_dir():
            return
        for path in staging.iterdir():
            try:
                stale = now - path.stat().st_mtime > STALE_STAGING_SECONDS
            except FileNotFoundError:
                continue
            if stale:
                shutil.rmtree(path, ignore_errors=True)

    def _note(self, run_id: str, error: str | None) -> None:
        """Log when artifacts start failing and when they recover, not on every run."""
        if error:
            self._good_runs = 0
            if not self._failing:
                self._failing = True
                log.warning(
                    "cannot keep failure artifacts; probing continues without them",
                    extra={"run_id": run_id, "directory": str(self.directory), "error": error},
                )
            return
        self._good_runs += 1
        if self._failing and self._good_runs >= RECOVERY_RUNS:
            self._failing = False
            log.info(
                "failure artifacts can be kept again",
                extra={"run_id": run_id, "runs_kept_in_a_row": self._good_runs},
            )


def _run_of(name: str) -> str | None:
    """`{run_id}-{kind}.{ext}` -> run_id (kinds have no dashes)."""
    stem, dash, rest = name.rpartition("-")
    return stem if dash and stem and "." in rest else None


def _belongs(name: str, run_id: str) -> bool:
    """A name the worker may report: one of this run's, and a plain file name."""
    return bool(_NAME.fullmatch(name)) and _run_of(name) == run_id
