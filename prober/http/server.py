"""The aiohttp application: /metrics, /healthz, /readyz.

Liveness and readiness answer different questions on purpose: /healthz fails only when
restarting would help (the scheduler loop is wedged); /readyz fails when this replica
cannot probe (no browser), which takes it out of the Service without a restart loop.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from prober.http.exposition import Exposition, Sections


@dataclass
class Health:
    """What the health endpoints report on; callables so they are read at request time."""

    alive: Callable[[], bool]
    browser_problem: Callable[[], str | None]


HEALTH_KEY = web.AppKey("health", Health)


async def healthz(request: web.Request) -> web.Response:
    if request.app[HEALTH_KEY].alive():
        return web.Response(text="ok\n")
    return web.Response(status=503, text="scheduler loop is not running\n")


async def readyz(request: web.Request) -> web.Response:
    problem = request.app[HEALTH_KEY].browser_problem()
    if problem is None:
        return web.Response(text="ready\n")
    return web.Response(status=503, text=f"not ready: {problem}\n")


def make_app(
    registry: CollectorRegistry, health: Health, sections: Sections | None = None
) -> web.Application:
    """`sections` (the registry's samples, in parts) feed the /metrics cache; without
    them, every scrape renders `registry` whole."""
    app = web.Application()
    app[HEALTH_KEY] = health
    if sections is None:
        app.router.add_get("/metrics", make_aiohttp_handler(registry))
    else:
        exposition = Exposition(sections)
        app.router.add_get("/metrics", exposition.handle)

        async def refresh(app: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(exposition.refresh(), name="metrics-refresh")
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        app.cleanup_ctx.append(refresh)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
