"""`python -m bench.reaper CMD...`: run CMD as a child subreaper, so no CPU time escapes.

A browser closed by its driver can leave helpers (Chromium's zygote and the renderers it
forked) orphaned; they re-parent to PID 1 and their CPU time is then in nobody's
reaped-children total. Under this wrapper they re-parent here and are reaped here, so
the wrapper's reaped-children CPU plus its live tree's is all the command cost.
SIGTERM is passed on to CMD; the wrapper exits with CMD once everything is reaped.
"""

import ctypes
import os
import signal
import subprocess
import sys

_PR_SET_CHILD_SUBREAPER = 36


def main(command: list[str]) -> int:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    child = subprocess.Popen(command)
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    status = 0
    while True:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            return status
        except InterruptedError:
            continue
        if pid == child.pid:
            status = os.waitstatus_to_exitcode(code)
            child.returncode = status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
