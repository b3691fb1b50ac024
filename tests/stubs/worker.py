"""A browserless stand-in for `python -m prober.worker`, for tests where Chromium is not the point.

It reads the same spec and speaks the same event protocol. Each declarative step's
`goto` URL says what the step does (`.invalid` never resolves, and the config accepts
only real http(s) URLs): `http://stub.invalid/ok`, `http://stub.invalid/sleep/SECONDS`,
`http://stub.invalid/fail`, `http://stub.invalid/hang` (block without reporting, so the
parent kills it at the timeout).
"""

import json
import os
import sys
import time


def emit(**event: object) -> None:
    os.write(1, (json.dumps(event) + "\n").encode())


def main() -> int:
    sys.stdin.buffer.readline()  # the LaunchSpec: this stub launches no browser
    spec = json.loads(sys.stdin.buffer.read())
    emit(event="browser_launched", duration_seconds=0.01, browser_version="stub")
    started = time.monotonic()
    for step in spec["steps"]:
        url = next(a["url"] for a in step["actions"] if a["action"] == "goto")
        emit(event="step_started", step=step["name"])
        step_started = time.monotonic()
        if url.startswith("http://stub.invalid/sleep/"):
            time.sleep(float(url.rsplit("/", 1)[1]))
        elif url == "http://stub.invalid/hang":
            time.sleep(3600)
        elif url == "http://stub.invalid/fail":
            emit(event="step_finished", step=step["name"], duration_seconds=0.0, ok=False)
            emit(
                event="run_finished",
                ok=False,
                result="failure",
                duration_seconds=time.monotonic() - started,
                failed_step=step["name"],
                reason="selector",
                error="stub failure",
            )
            return 0
        duration = time.monotonic() - step_started
        emit(event="step_finished", step=step["name"], duration_seconds=duration, ok=True)
    emit(
        event="run_finished",
        ok=True,
        result="success",
        duration_seconds=time.monotonic() - started,
        failed_step=None,
        reason=None,
        error=None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
