"""A worker that is killed at its timeout in the middle of writing artifacts.

Like the real worker past its soft deadline, it has closed the failed step already.
It publishes one complete artifact, claims names it has no right to, and leaves an
unscrubbed file half-written in its staging directory when the parent kills it.
"""

import json
import os
import sys
import time
from pathlib import Path

spec = json.loads(sys.stdin.read())
run_id, directory = spec["run_id"], Path(spec["artifacts_dir"])
staging = directory / ".staging" / run_id
staging.mkdir(parents=True)


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


emit("browser_launched", duration_seconds=0.01)
emit("step_started", step="slow_step")
emit("step_finished", step="slow_step", duration_seconds=1.5, ok=False, reason="timeout")
(directory / f"{run_id}-screenshot.png").write_bytes(b"\x89PNG\r\n\x1a\n")
emit("artifact", name=f"{run_id}-screenshot.png")
for claimed in (f"{run_id}-missing.json", "other-run-trace.zip", f"../{run_id}-x.png"):
    emit("artifact", name=claimed)
with (staging / "raw-trace.zip").open("wb") as partial:
    partial.write(spec["secrets"][0].encode())
    partial.flush()
    os.fsync(partial.fileno())
    time.sleep(300)
