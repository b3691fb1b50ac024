"""A stand-in for `python -m prober.worker` that misbehaves on purpose (mode in argv[1]).

Events it does send go through the protocol's own encoder; the misbehaviour (garbage,
floods, crashes) is written raw, as a broken worker would.
"""

import os
import signal
import subprocess
import sys
import time

from prober.contracts.protocol import (
    BrowserLaunched,
    Event,
    RunFinished,
    StepFinished,
    StepStarted,
    encode,
)
from prober.contracts.result import Outcome


def emit(event: Event) -> None:
    sys.stdout.buffer.write(encode(event))
    sys.stdout.flush()


def started(step: str = "slow_step") -> None:
    emit(BrowserLaunched(duration_seconds=0.01))
    emit(StepStarted(step="first"))
    emit(StepFinished(step="first", duration_seconds=0.01, ok=True))
    emit(StepStarted(step=step))


def one_good_step() -> None:
    emit(BrowserLaunched(duration_seconds=0.01))
    emit(StepStarted(step="only"))
    emit(StepFinished(step="only", duration_seconds=0.02, ok=True))
    emit(RunFinished(result=Outcome.SUCCESS, duration_seconds=0.02))


mode = sys.argv[1]
sys.stdin.read()
if mode == "hang":
    started()
    # A grandchild in a session of its own, like Chromium: a group kill would miss it.
    subprocess.Popen(["sleep", "300"], start_new_session=True)
    time.sleep(300)
elif mode == "crash":
    started()
    os.kill(os.getpid(), signal.SIGKILL)
elif mode == "garbage":
    print("hello from a confused worker")
    print("{not json")
elif mode == "huge_line":
    started()
    sys.stdout.write("x" * (3 << 20))
    sys.stdout.flush()
    time.sleep(300)
elif mode == "flood":
    started()
    line = "y" * 1000 + "\n"
    while True:
        sys.stdout.write(line)
elif mode == "stderr_flood":
    sys.stderr.write("z" * (20 << 20))
    sys.stderr.flush()
    one_good_step()
elif mode == "slow_exit":
    one_good_step()
    time.sleep(300)  # a browser that takes long to close
elif mode == "traceback":
    raise ValueError("boom in the worker")
elif mode == "secret_in_output":
    print(os.environ.get("STUB_SECRET", ""))
    sys.stderr.write("failed with password " + os.environ.get("STUB_SECRET", "") + "\n")
    sys.exit(3)
