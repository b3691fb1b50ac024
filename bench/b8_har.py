"""B8: the CPU a HAR recording adds to a run (issue 12), paired in the same process.

Each round does the demo sign-in twice, once without and once with
`record_har_path` (bodies omitted, as prober's worker records it), in alternating
order. A round's figure is the CPU time of the whole tree for one run: the Playwright
driver (started and stopped per run, so its and its browsers' CPU is reaped into this
process's children times), Chromium, and this process. The ratio of the paired
medians is the HAR's share of a bare run; a prober run costs more than a bare one
(trace, timings), so its share there is smaller still.

    python -m bench.b8_har --rounds 15
"""

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright

from bench.common import baseline_run, load, serve_target, summary, write_result


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


async def one_run(url: str, har: Path | None) -> float:
    before = _cpu()
    async with async_playwright() as playwright:
        await baseline_run(playwright, url, har)
    return _cpu() - before


async def main(rounds: int) -> dict[str, Any]:
    off: list[float] = []
    on: list[float] = []
    load_before = load()
    with tempfile.TemporaryDirectory() as scratch:
        async with serve_target() as target:
            await one_run(target.url, None)  # warm the page cache and the driver's files
            for n in range(rounds):
                har = Path(scratch) / f"{n}.har"
                order = (None, har) if n % 2 == 0 else (har, None)
                for mode in order:
                    (off if mode is None else on).append(await one_run(target.url, mode))
        sizes = await asyncio.to_thread(lambda: [p.stat().st_size for p in Path(scratch).iterdir()])
    assert len(sizes) == rounds and min(sizes) > 0, "a HAR was not written"
    paired = [b / a for a, b in zip(off, on, strict=True)]
    return {
        "rounds": rounds,
        "cpu_seconds_without_har": summary(off),
        "cpu_seconds_with_har": summary(on),
        "median_ratio_paired": statistics.median(paired),
        "ratio_of_medians": statistics.median(on) / statistics.median(off),
        "har_bytes": summary([float(size) for size in sizes]),
        "load_before": load_before,
        "load_after": load(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    result = asyncio.run(main(parser.parse_args().rounds))
    path = write_result("b8_har", result)
    print(
        f"B8 HAR cost: CPU per run {result['cpu_seconds_without_har']['median']:.3f} s "
        f"without, {result['cpu_seconds_with_har']['median']:.3f} s with; "
        f"paired median ratio {result['median_ratio_paired']:.3f}x "
        f"(ratio of medians {result['ratio_of_medians']:.3f}x); load "
        f"{result['load_before'][0]:.1f} -> {result['load_after'][0]:.1f}; {path}"
    )
