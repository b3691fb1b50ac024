"""/metrics served from a cache that is patched, section by section, when metrics change.

Rendering 100 scenarios x 10 steps (about 21,000 samples) with prometheus_client costs
well over 100 ms of CPU. Done on the event loop for every scrape it stalled the
scheduler, the API and every other scrape (B5 in bench/ measured 1.4 s p99); done in a
thread per change it still held the GIL for all that time, and each scrape meanwhile
waited out the interpreter's 5 ms switch interval at every wake-up (p99 15-28 ms).

So the samples come in sections (prober.record.metrics: one registry per scenario, one
for the replica's own families), each with a version that moves when it changes. A run's
end changes one section: only that one is rendered again, by prometheus_client's own
encoder for the format asked for, and the body is spliced from every section's output
family by family (a family's header once, then its series from each section). Each
format's body is kept until the next change; a scrape may get one up to
MAX_STALENESS_SECONDS behind the newest change while the re-render runs (Prometheus
timestamps samples at scrape time, and a second is far below any scrape interval); past
that it waits for a fresh render.
"""

import asyncio
import gzip
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

Encoder = Callable[[CollectorRegistry], bytes]
# Changes arrive in bursts (a run's end updates a dozen series); one render covers them.
DEBOUNCE_SECONDS = 0.05
MAX_STALENESS_SECONDS = 1.0
EOF = b"# EOF\n"


class Sections(Protocol):
    """What holds the samples (prober.record.metrics.ProberMetrics)."""

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Have `listener` called after every change, from any thread."""

    def sections(self) -> Sequence[tuple[Hashable, int, CollectorRegistry]]:
        """(key, version, registry) of each part of the samples: a version moves after
        every change to its registry, and the exposition is the registries' bodies
        spliced family by family, in this order."""


@dataclass
class _Rendered:
    """One section in one format: each family's (header lines, series lines), in order."""

    version: int
    families: dict[bytes, tuple[bytes, bytes]]


class Splicer:
    """One format's body, rendered again only for the sections that changed."""

    def __init__(self, encoder: Encoder, openmetrics: bool) -> None:
        self._encoder = encoder
        self._openmetrics = openmetrics
        self._sections: dict[Hashable, _Rendered] = {}
        # A render from the refresh loop and one on demand may overlap.
        self._lock = threading.Lock()

    def render(self, sections: Sequence[tuple[Hashable, int, CollectorRegistry]]) -> bytes:
        with self._lock:
            fresh: dict[Hashable, _Rendered] = {}
            for key, version, registry in sections:
                rendered = self._sections.get(key)
                if rendered is None or rendered.version != version:
                    rendered = _Rendered(version, _split(self._encoder(registry)))
                fresh[key] = rendered
            self._sections = fresh  # sections gone (a forgotten scenario) are dropped
            body = _splice(list(fresh.values()))
        return body + EOF if self._openmetrics else body


def _split(body: bytes) -> dict[bytes, tuple[bytes, bytes]]:
    """A rendered registry by family, in its order; `# EOF` (OpenMetrics) dropped.

    Every line is one record in both formats: HELP texts and label values escape their
    newlines, so a line starting with `# ` is a family's HELP, TYPE or UNIT, and every
    other line a sample of the family whose header came last.
    """
    families: dict[bytes, tuple[list[bytes], list[bytes]]] = {}
    header: list[bytes] = []
    series: list[bytes] = []
    name = b""
    for line in body.splitlines(keepends=True):
        if line.startswith(b"# "):
            if line == EOF:
                continue
            line_name = line.split(b" ", 3)[2]
            if line_name != name or not families:
                name = line_name
                header, series = families.setdefault(name, ([], []))
            header.append(line)
        else:
            series.append(line)
    return {name: (b"".join(h), b"".join(s)) for name, (h, s) in families.items()}


def _splice(sections: list[_Rendered]) -> bytes:
    """Each family's header once, then its series from every section, in section order.

    Families keep the order they have in the sections, the first section (the template:
    every family, no series) setting it; one that a later section adds (text format's
    `_created` gauges) goes right after the family that precedes it there, or last
    (the replica's own families).
    """
    order: list[bytes] = []
    seen: set[bytes] = set()
    for rendered in sections:
        if seen.issuperset(rendered.families):
            continue  # the common case: a scenario's section has the template's families
        seen.update(rendered.families)
        position = len(order)
        for name in rendered.families:
            if name in order:
                position = order.index(name) + 1
            else:
                order.insert(position, name)
                position += 1
    parts: list[bytes] = []
    for name in order:
        header = b""
        for rendered in sections:
            family = rendered.families.get(name)
            if family is not None:
                if not header:
                    header = family[0]
                    parts.append(header)
                parts.append(family[1])
    return b"".join(parts)


class Exposition:
    """The /metrics handler and its cache, re-rendered whenever `sections` reports a change."""

    def __init__(self, sections: Sections) -> None:
        self._sections = sections
        self._generation = 0
        # (content type, gzip) -> (generation rendered, body)
        self._cache: dict[tuple[str, bool], tuple[int, bytes]] = {}
        self._splicers: dict[str, Splicer] = {}
        self._dirty = asyncio.Event()
        # When the oldest change not yet in every cached body happened (monotonic).
        self._unrendered_since: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        sections.subscribe(self.changed)

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
        if content_type not in self._splicers:
            openmetrics = content_type.startswith("application/openmetrics-text")
            self._splicers[content_type] = Splicer(encoder, openmetrics)
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
        splicer = self._splicers[content_type]
        body = await asyncio.to_thread(_encode, splicer, self._sections.sections(), zipped)
        cached = self._cache.get((content_type, zipped))
        if cached is None or cached[0] < generation:
            self._cache[(content_type, zipped)] = (generation, body)
        return body


def _runs_in(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _encode(
    splicer: Splicer, sections: Sequence[tuple[Hashable, int, CollectorRegistry]], zipped: bool
) -> bytes:
    body = splicer.render(sections)
    # Level 1: most of the size gain for a fraction of the CPU of the default level.
    return gzip.compress(body, compresslevel=1) if zipped else body
