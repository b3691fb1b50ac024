"""/metrics served from a cache that is rebuilt off the event loop when metrics change.

Rendering 100 scenarios x 10 steps (about 21,000 samples) costs well over 100 ms of CPU.
Done on the event loop for every scrape it stalls the scheduler, the API and every
other scrape (B5 in bench/ measured 1.4 s p99). Metrics change only when a run starts
or ends (or on a reload or a history failure), so each format is rendered once per
change, in a thread, and scrapes get the cached bytes. A scrape may get a body up to
MAX_STALENESS_SECONDS behind the newest change while the re-render runs (Prometheus
timestamps samples at scrape time, and a second is far below any scrape interval);
past that it waits for a fresh render.
"""

import asyncio
import gzip
import time
from collections.abc import Callable
from typing import Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

Encoder = Callable[[CollectorRegistry], bytes]
# Changes arrive in bursts (a run's end updates a dozen series); one render covers them.
DEBOUNCE_SECONDS = 0.05
MAX_STALENESS_SECONDS = 1.0


class Changes(Protocol):
    """What tells the cache that samples changed (prober.record.metrics.ProberMetrics)."""

    def subscribe(self, listener: Callable[[], None]) -> None: ...


class Exposition:
    """The /metrics handler and its cache, re-rendered whenever `changes` reports one."""

    def __init__(self, registry: CollectorRegistry, changes: Changes) -> None:
        self._registry = registry
        self._generation = 0
        # (content type, gzip) -> (generation rendered, body)
        self._cache: dict[tuple[str, bool], tuple[int, bytes]] = {}
        self._encoders: dict[str, Encoder] = {}
        self._dirty = asyncio.Event()
        # When the oldest change not yet in every cached body happened (monotonic).
        self._unrendered_since: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        changes.subscribe(self.changed)

    def changed(self) -> None:
        """Safe from any thread (the history thread reports degradation from its own)."""
        self._generation += 1
        if self._unrendered_since is None:
            self._unrendered_since = time.monotonic()
        loop = self._loop
        if loop is not None and not _runs_in(loop):
            loop.call_soon_threadsafe(self._dirty.set)
        else:
            self._dirty.set()

    async def handle(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        self._encoders[content_type] = encoder
        zipped = "gzip" in request.headers.get("Accept-Encoding", "")
        cached = self._cache.get((content_type, zipped))
        if cached is not None and (cached[0] == self._generation or self._recent()):
            body = cached[1]
        else:
            body = await self._render(content_type, zipped)
        headers = {"Content-Type": content_type}
        if zipped:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def refresh(self) -> None:
        """Run for the server's lifetime: re-render the formats scrapers asked for."""
        self._loop = asyncio.get_running_loop()
        while True:
            await self._dirty.wait()
            await asyncio.sleep(DEBOUNCE_SECONDS)
            self._dirty.clear()
            generation = self._generation
            for content_type, zipped in list(self._cache):
                await self._render(content_type, zipped)
            if self._generation == generation:
                self._unrendered_since = None

    def _recent(self) -> bool:
        since = self._unrendered_since
        return since is not None and time.monotonic() - since < MAX_STALENESS_SECONDS

    async def _render(self, content_type: str, zipped: bool) -> bytes:
        generation = self._generation
        encoder = self._encoders[content_type]
        body = await asyncio.to_thread(_encode, encoder, self._registry, zipped)
        cached = self._cache.get((content_type, zipped))
        if cached is None or cached[0] < generation:
            self._cache[(content_type, zipped)] = (generation, body)
        return body


def _runs_in(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _encode(encoder: Encoder, registry: CollectorRegistry, zipped: bool) -> bytes:
    body = encoder(registry)
    # Level 1: most of the size gain for a fraction of the CPU of the default level.
    return gzip.compress(body, compresslevel=1) if zipped else body
