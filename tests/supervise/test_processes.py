"""WorkerProcesses on its own: plain Python child processes, no protocol, no browser."""

import sys
import time

import psutil
import pytest

from prober.supervise.processes import MAX_LINE_BYTES, RUN_TAG_ENV, Reading, WorkerProcesses

# Echoes the first line (what a LaunchSpec would be) and the payload, one line each.
ECHO = "import sys; print(sys.stdin.readline().strip()); print(sys.stdin.read()); sys.exit(3)"


def processes(script: str) -> WorkerProcesses:
    return WorkerProcesses([sys.executable, "-c", script], exit_wait=5.0)


async def test_lines_reach_the_callback_and_the_exit_status_is_kept() -> None:
    workers = processes(ECHO)
    worker = await workers.start("echo-1", b"first\n")
    assert workers.live_pids == {worker.process.pid}
    lines: list[bytes] = []

    def take(line: bytes) -> Reading:
        lines.append(line)
        return "more"

    ending = await workers.stream(worker, b"payload", take, time.monotonic() + 30)
    await workers.retire(worker)

    assert lines == [b"first\n", b"payload\n"]
    assert (ending.how, ending.returncode) == ("eof", 3)
    assert workers.live_pids == set()


@pytest.mark.parametrize(("reading", "how"), [("done", "done"), ("stop", "stopped")])
async def test_done_and_stop_do_not_wait_for_the_worker_to_exit(reading: Reading, how: str) -> None:
    """After the result (`done`) nothing a worker does counts: a worker still closing its
    browser is killed with its tree by `retire`, not given exit_wait to finish."""
    workers = processes("import time; print('result', flush=True); time.sleep(3)")
    worker = await workers.start(f"{reading}-1", b"\n")
    try:
        ending = await workers.stream(worker, b"", lambda line: reading, time.monotonic() + 30)
    finally:
        await workers.retire(worker)
    # Waiting for the exit would have seen it exit 0 after its sleep.
    assert ending.how == how and ending.returncode is None
    assert worker.process.returncode == -9


async def test_eof_waits_for_the_exit_status() -> None:
    # No result: the exit status is what tells a crash, so it is waited for.
    workers = processes("import sys, time; sys.stdout.close(); time.sleep(1); sys.exit(7)")
    worker = await workers.start("eof-1", b"\n")
    ending = await workers.stream(worker, b"", lambda line: "more", time.monotonic() + 30)
    await workers.retire(worker)
    assert (ending.how, ending.returncode) == ("eof", 7)


async def test_the_deadline_ends_the_stream_and_retire_kills_the_tagged_tree() -> None:
    script = (
        "import subprocess, time; "
        "subprocess.Popen(['sleep', '300'], start_new_session=True); time.sleep(300)"
    )
    workers = processes(script)
    worker = await workers.start("tree-1", b"\n")
    ending = await workers.stream(worker, b"", lambda line: "more", time.monotonic() + 1.5)
    assert (ending.how, ending.returncode) == ("timeout", None)
    await workers.retire(worker)

    tagged = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.environ().get(RUN_TAG_ENV) == "tree-1":
                tagged.append(child)
        except psutil.Error:
            continue
    assert tagged == []


async def test_an_overlong_line_is_an_overflow() -> None:
    workers = processes(
        f"import sys, time; sys.stdout.write('x' * {2 * MAX_LINE_BYTES}); time.sleep(300)"
    )
    worker = await workers.start("long-1", b"\n")
    ending = await workers.stream(worker, b"", lambda line: "more", time.monotonic() + 30)
    await workers.retire(worker)
    assert ending.how == "overflow"


async def test_stderr_is_kept_as_a_tail_from_its_first_whole_line() -> None:
    workers = processes(
        "import sys; sys.stderr.write(''.join(f'{i:06d}' + 'z' * 93 + '\\n' for i in range(3000)));"
        " sys.stderr.write('the end\\n'); sys.exit(1)"
    )
    worker = await workers.start("err-1", b"\n")
    ending = await workers.stream(worker, b"", lambda line: "more", time.monotonic() + 30)
    await workers.retire(worker)
    tail = ending.stderr_tail
    assert tail.endswith(b"the end\n") and len(tail) < 300000
    # Older output was dropped: the tail starts at a line, not inside one.
    first = tail.split(b"\n", 1)[0]
    assert len(first) == 99 and first[:6].isdigit()
