"""A browserless stand-in for `python -m prober.worker`, for tests where Chromium is not the point.

It reads the same specs and speaks the same protocol (prober.contracts.protocol). Each
declarative step's `goto` URL says what the step does (`.invalid` never resolves, and
the config accepts only real http(s) URLs): `http://stub.invalid/ok`,
`http://stub.invalid/sleep/SECONDS`, `http://stub.invalid/fail`,
`http://stub.invalid/hang` (block without reporting, so the parent kills it at the
timeout).
"""

import os
import sys
import time

from prober.contracts import protocol
from prober.contracts.result import Outcome, Reason
from prober.contracts.secrets import Redactor


def main() -> int:
    protocol.LaunchSpec.model_validate_json(
        sys.stdin.buffer.readline()
    )  # this stub launches nothing
    spec = protocol.WorkerSpec.model_validate_json(sys.stdin.buffer.read())
    redact = Redactor(spec.secrets)

    def emit(event: protocol.Event) -> None:
        os.write(1, protocol.encode(event, redact))

    emit(protocol.BrowserLaunched(duration_seconds=0.01, browser_version="stub"))
    started = time.monotonic()
    for step in spec.steps or []:
        url = next(getattr(a, "url", "") for a in step.actions if a.action == "goto")
        emit(protocol.StepStarted(step=step.name))
        step_started = time.monotonic()
        if url.startswith("http://stub.invalid/sleep/"):
            time.sleep(float(url.rsplit("/", 1)[1]))
        elif url == "http://stub.invalid/hang":
            time.sleep(3600)
        elif url == "http://stub.invalid/fail":
            emit(protocol.StepFinished(step=step.name, duration_seconds=0.0, ok=False))
            emit(
                protocol.RunFinished(
                    result=Outcome.FAILURE,
                    duration_seconds=time.monotonic() - started,
                    failed_step=step.name,
                    reason=Reason.SELECTOR,
                    error="stub failure",
                )
            )
            return 0
        duration = time.monotonic() - step_started
        emit(protocol.StepFinished(step=step.name, duration_seconds=duration, ok=True))
    emit(protocol.RunFinished(result=Outcome.SUCCESS, duration_seconds=time.monotonic() - started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
