"""Workers started ahead of their run, so a tick does not pay for process and browser start.

A fresh `python -m prober.worker` costs Python start-up, imports, Playwright's driver and
a browser launch before the first step: most of a second, which a bare Playwright script
that keeps its driver does not pay. The pool starts the next worker during the
scheduler's idle interval instead; the tick only hands it the scenario.

Isolation is unchanged: a pooled worker serves exactly one run and then exits (or is
killed with its whole tree, like any worker). It carries a tag of its own in its
environment until then, so the kill-by-tag of prober/supervise/processes.py finds its processes.
A worker that died while waiting is discarded and the run starts a cold worker.
"""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal

from prober.supervise.processes import Worker

log = logging.getLogger(__name__)

# What a pooled worker prepares before its run is due: nothing (no pool), Python and
# Playwright's driver, or those and a launched browser.
Prewarm = Literal["none", "driver", "browser"]


class WarmPool:
    """Keeps up to `size` started workers; each is handed out once, then replaced.

    Replacement starts when a run has ended (`replenish`), not when a worker is taken:
    starting Python, a driver and a browser next to a run in progress would slow the
    very run whose timings we report.
    """

    def __init__(
        self,
        spawn: Callable[[], Coroutine[Any, Any, Worker]],
        retire: Callable[[Worker], Awaitable[None]],
        size: int,
    ) -> None:
        self._spawn = spawn
        self._retire = retire
        self._size = size
        self._idle: deque[Worker] = deque()
        self._wanted = asyncio.Event()
        self._filler: asyncio.Task[None] | None = None
        self._spawning: asyncio.Task[Worker] | None = None

    @property
    def idle(self) -> list[Worker]:
        return list(self._idle)

    def start(self) -> None:
        self._filler = asyncio.create_task(self._fill(), name="worker-pool")
        self.replenish()

    def replenish(self) -> None:
        self._wanted.set()

    async def take(self) -> Worker | None:
        """A started worker, or None (the pool is empty or its workers died waiting)."""
        while self._idle:
            worker = self._idle.popleft()
            if worker.process.returncode is None:
                return worker
            log.warning(
                "pre-started worker died while waiting; starting a fresh one",
                extra={"tag": worker.tag, "returncode": worker.process.returncode},
            )
            await self._retire(worker)
            self.replenish()
        return None

    async def close(self) -> None:
        """Stop refilling and kill every idle worker with its tree (prober shutdown)."""
        if self._filler is not None:
            self._filler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._filler
        if self._spawning is not None:
            with contextlib.suppress(Exception):
                self._idle.append(await self._spawning)
        while self._idle:
            await self._retire(self._idle.popleft())

    async def _fill(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            while len(self._idle) < self._size:
                # Shielded, and only forgotten once it is in the idle list: if close()
                # cancels us after the process started, close() still collects it.
                self._spawning = asyncio.create_task(self._spawn())
                try:
                    worker = await asyncio.shield(self._spawning)
                except OSError as exc:
                    self._spawning = None
                    log.warning("cannot pre-start a worker", extra={"error": str(exc)})
                    break
                self._idle.append(worker)
                self._spawning = None
