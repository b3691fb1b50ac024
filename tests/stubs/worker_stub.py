"""A stand-in for `python -m prober.worker` that misbehaves on purpose (mode in argv[1])."""

import json
import os
import signal
import subprocess
import sys
import time


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def started(step: str = "slow_step") -> None:
    emit("browser_launched", duration_seconds=0.01)
    emit("step_started", step="first")
    emit("step_finished", step="first", duration_seconds=0.01, ok=True)
    emit("step_started", step=step)


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
    emit("browser_launched", duration_seconds=0.01)
    emit("step_started", step="only")
    emit("step_finished", step="only", duration_seconds=0.02, ok=True)
    emit("run_finished", ok=True, result="success", duration_seconds=0.02)
elif mode == "slow_exit":
    emit("browser_launched", duration_seconds=0.01)
    emit("step_started", step="only")
    emit("step_finished", step="only", duration_seconds=0.02, ok=True)
    emit("run_finished", ok=True, result="success", duration_seconds=0.02)
    time.sleep(300)  # a browser that takes long to close
elif mode == "traceback":
    raise ValueError("boom in the worker")
elif mode == "secret_in_output":
    print(os.environ.get("STUB_SECRET", ""))
    sys.stderr.write("failed with password " + os.environ.get("STUB_SECRET", "") + "\n")
    sys.exit(3)
