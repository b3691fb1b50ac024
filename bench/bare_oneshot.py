"""The bare one-shot that `prober run` is compared with: `python -m bench.bare_oneshot`.

Arguments: URL BROWSER FLAG... One Python process that imports only Playwright,
starts the driver, launches Chromium with the given flags, signs in once in a fresh
context and page (bench.signin), closes the browser, stops the driver and exits: what
a user's own cron-job script would cost.
"""

import asyncio
import sys

from playwright.async_api import async_playwright

from bench.signin import sign_in


async def main(url: str, executable: str, args: list[str]) -> None:
    async with async_playwright() as playwright:
        await sign_in(playwright, url, executable, args)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
