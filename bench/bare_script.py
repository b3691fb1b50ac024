"""The bare Playwright script prober replaces: `python -m bench.bare_script URL N`.

One process, the driver started once, N loops each signing in back to back with a
fresh browser per run (bench.common.baseline_run). Prints `run` per finished run, so
the capacity benchmark can count runs while it reads the tree's CPU time.
"""

import asyncio
import sys

from playwright.async_api import Playwright, async_playwright

from bench.common import baseline_run


async def loop(playwright: Playwright, url: str) -> None:
    while True:
        await baseline_run(playwright, url)
        print("run", flush=True)


async def main(url: str, concurrency: int) -> None:
    async with async_playwright() as playwright:
        await asyncio.gather(*(loop(playwright, url) for _ in range(concurrency)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
