"""A worker that is killed at its timeout in the middle of writing artifacts.

Like the real worker past its soft deadline, it has closed the failed step already.
It publishes one complete artifact, claims names it has no right to, and leaves an
unscrubbed file half-written in its staging directory when the parent kills it.
"""

import os
import sys
import time
from pathlib import Path

from prober.contracts.artifacts import staging_dir
from prober.contracts.protocol import (
    ArtifactKept,
    BrowserLaunched,
    Event,
    StepFinished,
    StepStarted,
    WorkerSpec,
    encode,
)
from prober.contracts.result import Reason

sys.stdin.readline()  # the LaunchSpec; this stub launches nothing
spec = WorkerSpec.model_validate_json(sys.stdin.read())
assert spec.artifacts_dir is not None
run_id, directory = spec.run_id, Path(spec.artifacts_dir)
staging = staging_dir(directory, run_id)
staging.mkdir(parents=True)


def emit(event: Event) -> None:
    sys.stdout.buffer.write(encode(event))
    sys.stdout.flush()


emit(BrowserLaunched(duration_seconds=0.01))
emit(StepStarted(step="slow_step"))
emit(StepFinished(step="slow_step", duration_seconds=1.5, ok=False, reason=Reason.TIMEOUT))
(directory / f"{run_id}-screenshot.png").write_bytes(b"\x89PNG\r\n\x1a\n")
emit(ArtifactKept(name=f"{run_id}-screenshot.png"))
for claimed in (f"{run_id}-missing.json", "other-run-trace.zip", f"../{run_id}-x.png"):
    emit(ArtifactKept(name=claimed))
with (staging / "raw-trace.zip").open("wb") as partial:
    partial.write(spec.secrets[0].encode())
    partial.flush()
    os.fsync(partial.fileno())
    time.sleep(300)
