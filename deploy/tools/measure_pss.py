"""Measure the peak memory (PSS) and CPU time of a command and all its descendants.

Used to size the Deployment's resource requests and limits (see README.md, "Sizing"):

    python deploy/tools/measure_pss.py -- python -m prober run --config demo.yaml sso-login

PSS (proportional set size) splits shared pages between the processes that map them,
so the sum over a process tree is what the tree costs the node, unlike the sum of RSS,
which counts Chromium's shared libraries once per Chromium process.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import psutil


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def measure(cmd: list[str], interval: float) -> tuple[int, float, float, int, int]:
    """Run cmd; return (peak PSS bytes, CPU seconds, wall seconds, peak processes, rc).

    CPU time comes from getrusage(RUSAGE_CHILDREN) after the command exits: it covers
    every descendant that its parent reaped, which sampling would miss for short-lived
    Chromium helpers.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.Popen(cmd)
    root = psutil.Process(proc.pid)
    peak_pss = 0
    peak_procs = 0
    while proc.poll() is None:
        total = 0
        procs = _tree(root)
        for p in procs:
            try:
                total += p.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        peak_pss = max(peak_pss, total)
        peak_procs = max(peak_procs, len(procs))
        time.sleep(interval)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return peak_pss, cpu, wall, peak_procs, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=0.05, help="sampling period, s")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command to run")
    args = parser.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no command given")
    peak, cpu_s, wall, procs, rc = measure(cmd, args.interval)
    print(
        f"peak_pss_mib={peak / 2**20:.0f} cpu_seconds={cpu_s:.2f} wall_seconds={wall:.2f} "
        f"peak_processes={procs} exit_code={rc}",
        file=sys.stderr,
    )
    return rc


if __name__ == "__main__":
    sys.exit(main())
