"""Worker processes: starting one, streaming its output, killing it with everything it
started, and reaping what is left. Knows nothing of what a run means (that is
prober.supervise.tracker): it writes the bytes it is given and hands on each line.

Playwright starts Chromium in a session of its own, so killing the worker's process
group leaves the browser running (a peer shipped exactly this and users found tens of
thousands of defunct browsers). We therefore kill by *tree* and by *tag*: every process
a worker starts inherits `RUN_TAG_ENV` in its environment, and a process that was
re-parented (to us, as the child subreaper) is still found by its tag.
"""

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import stat
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psutil

log = logging.getLogger(__name__)

RUN_TAG_ENV = "PROBER_WORKER_RUN_ID"
_PR_SET_CHILD_SUBREAPER = 36
REAP_SECONDS = 5.0
# Each worker's TMPDIR: `{tmp}/prober-XXXXXXXX`, with the owning prober recorded inside.
SCRATCH_PREFIX = "prober-"
OWNER_FILE = ".prober-owner"

# How one line of output is taken: read on, the result is in (the worker may be killed
# now), or stop reading now (the output is garbage).
Reading = Literal["more", "done", "stop"]
# A line longer than this is no event; the stream reader's limit.
MAX_LINE_BYTES = 1 << 20
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


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


def tree_memory(pid: int) -> int:
    """Proportional set size (PSS) in bytes of a process and all its descendants (a
    slot's worker, driver and browser); 0 once it is gone. Blocking: call it in a thread.

    PSS, not RSS: Chromium's processes share most of their pages, and summing their RSS
    counts those once per process (1.05 GB of RSS for 0.50 GB of PSS, one idle page).
    """
    total = 0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += process.memory_full_info().pss
    return total


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


def stopped_in_run(pid: int, run_id: str) -> list[str]:
    """`name pid` of the run's processes that are stopped (SIGSTOP, a debugger, a freezer).

    A stopped browser cannot answer, so a run that times out with one is our
    environment's fault, not the target's. One look at the run's tree: cheap, and only
    asked when a run timed out, before it is killed.
    """
    found = []
    for process in run_processes(pid, run_id):
        with contextlib.suppress(psutil.Error):
            if process.status() in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
                found.append(f"{process.name()} {process.pid}")
    return found


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


def kill_all_runs() -> int:
    """SIGKILL and reap every descendant that belongs to any run; returns how many.

    The last resort of a process that is exiting without having retired its workers
    (`prober run` interrupted twice: asyncio abandons the clean-up it had started).
    """
    found = []
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error, OSError):
                if RUN_TAG_ENV in child.environ():
                    child.kill()
                    found.append(child)
    reap(found, in_sessions=sessions(found))
    return len(found)


def _owner_record() -> str:
    """This process as a scratch directory's owner: pid namespace, pid, start time.

    The start time tells a reused pid from ours; the namespace keeps a prober in another
    container that shares /tmp (whose pids mean nothing here) from being judged dead.
    """
    me = psutil.Process()
    return f"{os.readlink('/proc/self/ns/pid')} {me.pid} {me.create_time():.2f}\n"


def _claim(scratch: Path) -> None:
    (scratch / OWNER_FILE).write_text(_owner_record())


def _owner_alive(record: str) -> bool:
    """False only when the record is ours to judge and its process is certainly gone."""
    try:
        namespace, pid, started = record.split()
        if namespace != os.readlink("/proc/self/ns/pid"):
            return True
        process = psutil.Process(int(pid))
        return f"{process.create_time():.2f}" == started
    except psutil.NoSuchProcess:
        return False
    except (ValueError, OSError, psutil.Error):
        return True  # unreadable or not ours to judge: leave it


def sweep_scratch(directory: Path | None = None) -> int:
    """Remove worker scratch directories left by a prober that was killed (SIGKILL, OOM).

    Only our naming pattern, only directories this user owns (not symlinks), and only
    when the owner recorded inside is certainly dead: another live prober's, another
    user's and ones without a record are left alone. Returns how many were removed.
    """
    directory = directory or Path(tempfile.gettempdir())
    removed = 0
    try:
        candidates = list(directory.glob(SCRATCH_PREFIX + "*"))
    except OSError:
        return 0
    for path in candidates:
        try:
            info = path.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                continue
            record = (path / OWNER_FILE).read_text()
        except OSError:
            continue
        if not _owner_alive(record):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    if removed:
        log.info("removed scratch directories of a prober that is gone", extra={"count": removed})
    return removed


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


@dataclass(frozen=True)
class Ending:
    """How the reading of a worker's output ended, for the tracker to interpret.

    `done`: the result came in; `eof`: the output closed without one; `stopped`: the
    reader gave up on the output; `timeout`: the hard deadline passed; `overflow`: a
    line longer than MAX_LINE_BYTES.
    """

    how: Literal["done", "eof", "stopped", "timeout", "overflow"]
    at: float  # CLOCK_MONOTONIC
    returncode: int | None
    stderr_tail: bytes


@dataclass
class Worker:
    """A started worker process; `tag` is the RUN_TAG_ENV value its whole tree carries."""

    process: asyncio.subprocess.Process
    tag: str
    scratch: str  # the worker's private TMPDIR, removed when it retires
    stderr_tail: deque[bytes] = field(default_factory=lambda: deque(maxlen=32))
    drain: asyncio.Task[None] | None = None

    def stderr(self) -> bytes:
        """The tail of stderr, from the first whole line kept.

        Once older output was dropped, the first line may start inside a secret, where
        no spelling of it matches any more: that line goes.
        """
        tail = b"".join(self.stderr_tail)
        if len(self.stderr_tail) == self.stderr_tail.maxlen:
            tail = tail.partition(b"\n")[2]
        return tail

    def drain_stderr(self) -> None:
        """Keep reading stderr from the start, so a chatty worker never blocks on a full pipe."""
        assert self.process.stderr is not None
        self.drain = asyncio.create_task(_drain(self.process.stderr, self.stderr_tail))


async def _drain(stream: asyncio.StreamReader, tail: deque[bytes]) -> None:
    while chunk := await stream.read(4096):
        tail.append(chunk)


class WorkerProcesses:
    """Starts worker processes, streams their output, and takes them down with their tree.

    Knows nothing of what a run means: it writes the bytes it is given and hands each
    line of output to a callback. One instance serves every worker of a prober process.
    """

    def __init__(self, command: Sequence[str], exit_wait: float = 5.0) -> None:
        self.command = list(command)
        self.exit_wait = exit_wait
        # Pids asyncio is waiting for: the orphan reaper must not steal their exit status.
        self.live_pids: set[int] = set()

    async def start(self, tag: str, first_line: bytes) -> Worker:
        """Start a worker in its own session and write `first_line` on its stdin at once."""
        # Playwright and Chromium put profiles and temp files (and the raw trace) under
        # TMPDIR and never remove them when killed; each worker gets a private directory,
        # removed when it retires.
        # Short on purpose: Chromium puts Unix sockets below it, and a socket path over 107
        # bytes makes every launch fail, so the tag (kills find processes by environment)
        # stays out of the name.
        scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX)
        try:
            _claim(Path(scratch))
            process = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                env=_environment(tag, scratch),
                limit=MAX_LINE_BYTES,
            )
        except OSError:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        self.live_pids.add(process.pid)
        worker = Worker(process, tag, scratch)
        worker.drain_stderr()
        assert process.stdin is not None
        process.stdin.write(first_line)
        return worker

    async def stream(
        self,
        worker: Worker,
        payload: bytes,
        on_line: Callable[[bytes], Reading],
        deadline: float,
        keep_stdin_open: bool = False,
    ) -> Ending:
        """Write `payload`, then hand each output line to `on_line` until it says "done".

        A per-run worker gets its spec and then EOF (stdin closed); a slot worker
        (`keep_stdin_open`) gets one spec line and waits for the next. Everything
        happens before `deadline` (CLOCK_MONOTONIC), the run's hard limit.
        """
        process = worker.process
        assert process.stdin and process.stdout
        how: Literal["done", "eof", "stopped", "timeout", "overflow"] = "eof"
        try:
            async with asyncio.timeout_at(deadline):
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    process.stdin.write(payload + b"\n" if keep_stdin_open else payload)
                    await process.stdin.drain()
                    if not keep_stdin_open:
                        process.stdin.close()
                how = await _read(process.stdout, on_line)
                if how == "eof":
                    # The worker is gone or going without a result: its exit status says why.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(process.wait(), self.exit_wait)
                # "done": the result is in and nothing the worker does after it counts. A
                # per-run worker's orderly close (browser, driver) cost ~0.2 CPU-s and as
                # much wall time, so `retire` kills its tree now, as at a timeout; a slot
                # worker goes back to its pool.
        except TimeoutError:
            how = "timeout"
        return Ending(how, time.monotonic(), process.returncode, worker.stderr())

    async def retire(self, worker: Worker) -> None:
        """Kill the worker's tree (a no-op after a clean exit), reap it, remove its TMPDIR."""
        try:
            await _stop(worker)
        finally:
            self.live_pids.discard(worker.process.pid)
            await asyncio.to_thread(shutil.rmtree, worker.scratch, True)
            # Chromium's helpers (crashpad, zygote) outlive the driver and re-parent to
            # us; they are dead by now but untagged (a zombie's environment is gone), so
            # reap them here rather than leave them to the service's periodic reaper.
            reap_orphans(exclude=self.live_pids)

    def reap_orphans(self) -> int:
        """Reap zombies re-parented to us, leaving alone the workers asyncio waits for."""
        return reap_orphans(exclude=self.live_pids)


async def _read(
    stdout: asyncio.StreamReader, on_line: Callable[[bytes], Reading]
) -> Literal["done", "eof", "stopped", "overflow"]:
    while True:
        try:
            line = await stdout.readline()
        except ValueError:  # a line over the stream limit
            return "overflow"
        if not line:
            return "eof"
        reading = on_line(line)
        if reading == "done":
            return "done"
        if reading == "stop":
            return "stopped"


async def _stop(worker: Worker) -> None:
    """Kill the worker's tree, wait for it and reap the rest."""
    killed = kill_run(worker.process.pid, worker.tag)
    others = [p for p in killed if p.pid != worker.process.pid]
    run_sessions = sessions(killed) | {worker.process.pid}
    try:
        await asyncio.shield(worker.process.wait())
    finally:
        if worker.drain is not None:
            worker.drain.cancel()
        if others:
            survivors = await asyncio.to_thread(reap, others, REAP_SECONDS, run_sessions)
            if survivors:
                log.warning(
                    "processes survived SIGKILL",
                    extra={"tag": worker.tag, "pids": [p.pid for p in survivors]},
                )


def _environment(tag: str, scratch: str) -> dict[str, str]:
    env = dict(os.environ)
    env[RUN_TAG_ENV] = tag
    # The API token is the prober's; nothing in a run (scripts, browser) needs it.
    env.pop("PROBER_API_TOKEN", None)
    env["TMPDIR"] = scratch
    # The worker must import the same prober as the parent, even from a source tree.
    env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_ROOT, *filter(None, [env.get("PYTHONPATH")])])
    return env
