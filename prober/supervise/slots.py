"""Slots: long-lived workers that keep their driver and browser between runs.

With process isolation every run pays Python start-up, imports, Playwright's driver and
a browser launch. A slot (context isolation) pays them once: one worker per concurrency
slot serves run after run, each in a fresh BrowserContext, the way Playwright's own test
runner isolates tests.

A slot is recycled (its whole process tree killed and reaped, a fresh one started when
next needed) after `max_runs` runs, once older than `max_age`, when its tree's PSS is
above `max_memory`, after its browser crashed, and after any run that did not end cleanly:
a run that hit its timeout is killed with the slot's tree at the deadline, exactly as a
per-run worker is, so a wedged page never outlives its run.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, get_args

from prober.supervise.processes import Worker, tree_memory

log = logging.getLogger(__name__)


# Why a slot was replaced: a fixed set, the `reason` label of prober_slot_recycles_total.
RecycleReason = Literal[
    "timeout", "worker_exit", "browser_crash", "max_runs", "max_age", "max_memory"
]
RECYCLE_REASONS: tuple[RecycleReason, ...] = get_args(RecycleReason)


@dataclass(frozen=True)
class SlotLimits:
    """When a slot is replaced by a fresh one (see the module docstring)."""

    max_runs: int = 100
    max_age: float = 3600.0
    max_memory: int = 1 << 30  # bytes of PSS, the whole tree


@dataclass
class Slot:
    worker: Worker
    born: float  # CLOCK_MONOTONIC
    runs: int = 0


class SlotPool:
    """Idle slots, handed out one run at a time; at most `size` are kept idle.

    The scheduler's concurrency limit bounds how many slots exist at once: a run takes
    an idle slot or starts one, and gives it back (or retires it) when it has ended.
    """

    def __init__(
        self,
        spawn: Callable[[], Coroutine[Any, Any, Worker]],
        retire: Callable[[Worker], Awaitable[None]],
        size: int,
        limits: SlotLimits,
        prestart: bool = False,
        on_recycle: Callable[[RecycleReason], None] | None = None,
    ) -> None:
        self._spawn = spawn
        self._on_recycle = on_recycle
        self._retire = retire
        self._size = size
        self.limits = limits
        self._prestart = prestart
        self._idle: deque[Slot] = deque()
        self._starting: set[asyncio.Task[None]] = set()

    @property
    def idle(self) -> list[Slot]:
        return list(self._idle)

    def start(self) -> None:
        """With `prestart`, start the slots now rather than in the first runs."""
        if self._prestart:
            for _ in range(self._size):
                self._start_one()

    async def take(self) -> Slot:
        """An idle slot whose worker is alive, else a new one (OSError if it cannot start)."""
        while self._idle:
            slot = self._idle.popleft()
            if slot.worker.process.returncode is None:
                return slot
            log.warning(
                "idle slot died; starting a fresh one",
                extra={"tag": slot.worker.tag, "returncode": slot.worker.process.returncode},
            )
            self._recycled("worker_exit")
            await self._retire(slot.worker)
        return Slot(await self._spawn(), time.monotonic())

    async def give_back(
        self, slot: Slot, clean: bool, browser_crashed: bool, timed_out: bool = False
    ) -> None:
        """After a run: keep the slot for the next one, or retire it (and say why).

        `clean`: the run ended with `run_ended` and not at its deadline; `timed_out`:
        it hit its deadline (else an unclean end means the worker died or broke the
        protocol).
        """
        slot.runs += 1
        why = await self._recycle_reason(slot, clean, browser_crashed, timed_out)
        if why is None and len(self._idle) < self._size:
            self._idle.append(slot)
            return
        log.info(
            "recycling slot: %s",
            why[1] if why else "enough idle slots",
            extra={"tag": slot.worker.tag, "runs": slot.runs},
        )
        if why is not None:
            self._recycled(why[0])
        await self._retire(slot.worker)
        if self._prestart and why is not None:
            self._start_one()

    async def close(self) -> None:
        """Kill every slot with its tree (prober shutdown)."""
        for task in list(self._starting):
            await asyncio.gather(task, return_exceptions=True)
        while self._idle:
            await self._retire(self._idle.popleft().worker)

    async def _recycle_reason(
        self, slot: Slot, clean: bool, browser_crashed: bool, timed_out: bool
    ) -> tuple[RecycleReason, str] | None:
        if timed_out:
            return "timeout", "the run hit its deadline"
        if not clean:
            return "worker_exit", "the worker did not end the run cleanly"
        if browser_crashed:
            return "browser_crash", "the browser crashed"
        if slot.runs >= self.limits.max_runs:
            return "max_runs", f"served {slot.runs} runs"
        if time.monotonic() - slot.born >= self.limits.max_age:
            return "max_age", f"older than {self.limits.max_age:g}s"
        pss = await asyncio.to_thread(tree_memory, slot.worker.process.pid)
        if pss > self.limits.max_memory:
            return "max_memory", f"its tree's PSS of {pss} bytes is above {self.limits.max_memory}"
        return None

    def _recycled(self, reason: RecycleReason) -> None:
        if self._on_recycle is not None:
            self._on_recycle(reason)

    def _start_one(self) -> None:
        task = asyncio.create_task(self._add())
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _add(self) -> None:
        try:
            worker = await self._spawn()
        except OSError as exc:
            log.warning("cannot start a slot", extra={"error": str(exc)})
            return
        if len(self._idle) < self._size:
            self._idle.append(Slot(worker, time.monotonic()))
        else:
            await self._retire(worker)
