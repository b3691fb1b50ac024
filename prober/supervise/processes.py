"""Killing a worker with everything it started, and reaping what is left.

Playwright starts Chromium in a session of its own, so killing the worker's process
group leaves the browser running (a peer shipped exactly this and users found tens of
thousands of defunct browsers). We therefore kill by *tree* and by *tag*: every process
a worker starts inherits `RUN_TAG_ENV` in its environment, and a process that was
re-parented (to us, as the child subreaper) is still found by its tag.
"""

import contextlib
import ctypes
import os
import signal
import time

import psutil

RUN_TAG_ENV = "PROBER_WORKER_RUN_ID"
_PR_SET_CHILD_SUBREAPER = 36
REAP_SECONDS = 5.0


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process so we can reap them.

    Without it they go to PID 1, which is fine under tini but leaks zombies where
    PID 1 does not reap (a bare container entrypoint).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def tagged(process: psutil.Process, run_id: str) -> bool:
    try:
        return process.environ().get(RUN_TAG_ENV) == run_id
    except (psutil.Error, OSError):
        return False


def run_processes(pid: int, run_id: str) -> list[psutil.Process]:
    """The worker's live tree plus any re-parented process that carries the run's tag."""
    found: dict[int, psutil.Process] = {}
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        found[root.pid] = root
        for child in root.children(recursive=True):
            found[child.pid] = child
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children(recursive=True):
            if child.pid not in found and tagged(child, run_id):
                found[child.pid] = child
    return list(found.values())


def kill_run(pid: int, run_id: str) -> list[psutil.Process]:
    """SIGKILL the worker's whole tree and its process group; return what was signalled."""
    processes = run_processes(pid, run_id)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    return processes


def sessions(processes: list[psutil.Process]) -> set[int]:
    """Session ids of a run's processes: the worker's own, and Chromium's (it calls setsid)."""
    found = set()
    for process in processes:
        with contextlib.suppress(OSError):
            found.add(os.getsid(process.pid))
    return found


def reap(
    processes: list[psutil.Process],
    timeout: float = REAP_SECONDS,
    in_sessions: set[int] | frozenset[int] = frozenset(),
) -> list[psutil.Process]:
    """Wait (bounded) until killed processes are gone; returns the survivors.

    A killed grandchild (a Chromium renderer) is first a zombie of its killed parent,
    then re-parented to us as the subreaper: waiting alone would poll that zombie until
    the timeout and leave it behind, so each one that has become our child is reaped.
    Processes that were already exiting when the run was killed cannot be told by their
    tag (a dying process's environment reads empty), but still by their session: those
    in `in_sessions` are killed and reaped too.
    Blocking: call it in a thread. Never pass a pid asyncio itself is waiting for.
    """
    deadline = time.monotonic() + timeout
    alive = {process.pid: process for process in processes}
    while True:
        if in_sessions:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process().children(recursive=True):
                    if child.pid not in alive and _session(child.pid) in in_sessions:
                        alive[child.pid] = child
                        with contextlib.suppress(psutil.Error):
                            child.kill()
        for pid in list(alive):
            with contextlib.suppress(OSError):  # ECHILD: not (yet) our child
                os.waitpid(pid, os.WNOHANG)
        alive = {pid: process for pid, process in alive.items() if process.is_running()}
        if not alive or time.monotonic() >= deadline:
            return list(alive.values())
        time.sleep(0.05)


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def reap_orphans(exclude: set[int], passes: int = 10) -> int:
    """Reap zombie children that re-parented to us (as subreaper); skip `exclude` pids.

    Repeats while it finds any: a zombie's own zombie children only re-parent to us
    once it is reaped.
    """
    total = 0
    for _ in range(passes):
        reaped = 0
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process().children():
                if child.pid in exclude:
                    continue
                with contextlib.suppress(psutil.Error, ChildProcessError):
                    if child.status() == psutil.STATUS_ZOMBIE:
                        os.waitpid(child.pid, os.WNOHANG)
                        reaped += 1
        total += reaped
        if not reaped:
            break
    return total
