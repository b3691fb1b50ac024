"""Live reload: apply a changed scenario file (or SIGHUP) to the running scheduler.

A Kubernetes ConfigMap volume updates by a symlink swap: `scenarios.yaml -> ..data/
scenarios.yaml`, and `..data` is re-pointed atomically at a new timestamped directory.
The file we were given never changes in place, so we poll its *resolved* path, inode
and mtime (cheap; inotify on the symlink would miss the swap, and `watchfiles` would be
a dependency for what one stat every few seconds does).

Secret files the scenarios read (`${file:/etc/prober/credentials/password}`) are watched
the same way: the kubelet updates a mounted Secret by the same `..data` swap, and the
reload that follows puts the new value in the scenarios, so the next run uses it.

A new file is validated whole before anything changes. If it is invalid the running
scenarios keep running, the reason is logged and `prober_config_last_reload_successful`
drops to 0, which alerts. Otherwise: new scenarios start, changed ones restart their
loop, unchanged ones keep their schedule, removed ones stop taking runs and their series
leave /metrics once their in-flight run has ended.
"""

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from prober.contracts.config import Config, ConfigError, Scenario, load_config
from prober.contracts.secrets import Redactor
from prober.schedule.scheduler import Scheduler
from prober.slo import buckets as slo_buckets

log = logging.getLogger(__name__)

Selector = Callable[[Iterable[Scenario]], tuple[Scenario, ...]]
Fingerprint = tuple[str, int, int, int, int] | None


def fingerprint(path: Path) -> Fingerprint:
    """What changes when the file, or the symlinks leading to it, are replaced."""
    try:
        resolved = os.path.realpath(path)
        stat = os.stat(resolved)
    except OSError:
        return None
    return resolved, stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size


class ReloadListener(Protocol):
    """What a reload tells the metrics (prober.record.metrics.ProberMetrics is one)."""

    def config_loaded(self, ok: bool, at: float) -> None: ...
    def configure(self, scenarios: Iterable[Scenario]) -> None: ...
    def forget(self, scenario: str) -> None: ...

    # Histogram boundaries, fixed for the process' life: a reload can only warn.
    @property
    def scenario_buckets(self) -> tuple[float, ...]: ...
    @property
    def step_buckets(self) -> tuple[float, ...]: ...


class ConfigReloader:
    """Watches one scenario file and applies it to a scheduler, its metrics and redactor.

    `redact` is the one redactor logs, runner and API share: a reloaded file's secrets
    are added to it in place.
    """

    def __init__(
        self,
        config: Config,
        scheduler: Scheduler,
        metrics: ReloadListener,
        redact: Redactor,
        select: Selector = tuple,
    ) -> None:
        self.path = config.path
        self._files = config.files
        self._scheduler = scheduler
        self._metrics = metrics
        self._redact = redact
        self._select = select
        self._seen = self._fingerprints()
        self._requested = asyncio.Event()
        self._retiring: set[asyncio.Task[None]] = set()

    def request(self) -> None:
        """Reload at the next opportunity even if the file looks unchanged (SIGHUP)."""
        self._requested.set()

    async def watch(self, interval: float) -> None:
        """Poll every `interval` seconds; reload on a change or a request."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._requested.wait(), interval)
            requested = self._requested.is_set()
            self._requested.clear()
            # Taken before reading: a write that lands after the read shows up next poll.
            current = self._fingerprints()
            if requested or current != self._seen:
                self._seen = current
                try:
                    await self.reload("SIGHUP" if requested else "scenario or secret file changed")
                except Exception as exc:
                    # Never the end of watching: the next file, or SIGHUP, must still apply.
                    log.error(
                        "scenario file reload failed; watching on",
                        extra={"trigger": "watch", "why": f"unexpected {type(exc).__name__}"},
                    )
                    self._metrics.config_loaded(False, time.time())

    def _fingerprints(self) -> tuple[Fingerprint, ...]:
        """The scenario file's and every secret file's, from the last applied config."""
        return tuple(fingerprint(path) for path in (self.path, *self._files))

    async def reload(self, trigger: str) -> bool:
        """Load, validate and apply the file; on any problem keep what is running.

        load_config bounds its own time and memory (prober.contracts.yamlload), so a hostile file
        costs seconds, and the thread it runs in cannot outlive shutdown for long.
        """
        try:
            config = await asyncio.to_thread(load_config, self.path)
        except Exception as exc:
            why = str(exc) if isinstance(exc, ConfigError) else f"unexpected {type(exc).__name__}"
            log.error(
                "scenario file rejected; the previous scenarios keep running",
                extra={"trigger": trigger, "why": why},
            )
            self._metrics.config_loaded(False, time.time())
            return False
        self.apply(config, trigger)
        self._metrics.config_loaded(True, time.time())
        if config.files != self._files:
            self._files = config.files
            self._seen = self._fingerprints()
        return True

    def apply(self, config: Config, trigger: str) -> None:
        wanted = {scenario.name: scenario for scenario in self._select(config.scenarios)}
        running = self._scheduler.scenarios
        # Added, never replaced: runs of the old definitions may still be logging.
        self._redact.add(config.secrets)
        added = sorted(wanted.keys() - running.keys())
        removed = sorted(running.keys() - wanted.keys())
        changed = sorted(n for n in wanted.keys() & running.keys() if wanted[n] != running[n])
        for name in removed:
            task = asyncio.create_task(self._retire(name), name=f"retire:{name}")
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        fresh = [wanted[name] for name in (*added, *changed)]
        unbucketed = slo_buckets.missing(
            config.scenarios, self._metrics.scenario_buckets, self._metrics.step_buckets
        )
        if unbucketed:
            log.warning(
                "latency objectives without a histogram bucket until prober restarts",
                extra={"duration_under_seconds": unbucketed},
            )
        self._metrics.configure(fresh)
        for scenario in fresh:
            self._scheduler.add(scenario)
        log.info(
            "scenario file applied",
            extra={"trigger": trigger, "added": added, "removed": removed, "changed": changed},
        )

    async def _retire(self, name: str) -> None:
        await self._scheduler.remove(name)
        if name not in self._scheduler.scenarios:  # not re-added while its last run ended
            self._metrics.forget(name)

    async def close(self) -> None:
        """At shutdown: removed scenarios' last runs are the scheduler's to stop."""
        for task in self._retiring:
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
