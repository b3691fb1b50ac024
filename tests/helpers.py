"""Helpers shared by reload and fault tests: a ConfigMap-style mount and polling waits."""

import asyncio
import os
import secrets
import shutil
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

STUB_WORKER = str(Path(__file__).parent / "stubs" / "worker.py")


def publish(mount: Path, text: str, extra: dict[str, str] | None = None) -> Path:
    """Update `mount` exactly as the kubelet's AtomicWriter updates a ConfigMap volume.

    Files live in `..<timestamp>/`; `..data` points at it; `scenarios.yaml` is a symlink
    to `..data/scenarios.yaml`. An update writes a new timestamped directory, swaps
    `..data` with a rename of `..data_tmp` (atomic) and deletes the old directory.
    """
    mount.mkdir(exist_ok=True)
    data = mount / "..data"
    old = os.readlink(data) if data.is_symlink() else None
    stamp = mount / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{secrets.token_hex(4)}"
    stamp.mkdir()
    files = {"scenarios.yaml": textwrap.dedent(text), **(extra or {})}
    for name, content in files.items():
        (stamp / name).write_text(textwrap.dedent(content))
    os.symlink(stamp.name, mount / "..data_tmp")
    os.rename(mount / "..data_tmp", data)
    for name in files:
        if not (mount / name).is_symlink():
            os.symlink(f"..data/{name}", mount / name)
    if old is not None:
        shutil.rmtree(mount / old)
    return mount / "scenarios.yaml"


def stub_scenario(name: str, url: str = "http://stub.invalid/ok", interval: str = "200ms") -> str:
    """One declarative scenario for the stub worker (`tests/stubs/worker.py`)."""
    return f"""
  - name: {name}
    interval: {interval}
    timeout: 10s
    steps:
      - name: only
        actions:
          - goto: "{url}"
"""


async def wait_until(predicate: Callable[[], bool], within: float = 30.0) -> None:
    """Poll generously: the machine is small and shared, so no tight timing here."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.05)
