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

import psutil

RUN_TAG_ENV = "PROBER_WORKER_RUN_ID"
_PR_SET_PDEATHSIG = 1
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


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (a worker's safety net).

    If the prober itself is killed (OOM, SIGKILL) nobody is left to enforce timeouts; the
    worker's driver then sees its pipe close and takes the browser down with it.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before the call above took effect
        os._exit(1)


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


def reap(processes: list[psutil.Process], timeout: float = REAP_SECONDS) -> list[psutil.Process]:
    """Wait (bounded) for killed processes; ours are reaped by the wait. Returns survivors.

    Blocking: call it in a thread. Never pass a pid asyncio itself is waiting for.
    """
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return alive


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
