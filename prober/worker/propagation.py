"""`traceparent` on the requests a run's page makes to the scenario's own origins.

`page.set_extra_http_headers` would be simpler but sends the header to every host,
third parties included, whose CORS preflight may then refuse the request. So the
context routes only URLs matching the scenario's origins (one regex, which Playwright
matches in the browser process: other requests are not intercepted at all) and adds
the header as the request goes on. The parent span is the step in progress
(prober.contracts.tracecontext explains why per step).
"""

from collections.abc import Callable

from playwright.async_api import BrowserContext, Route

from prober.contracts.tracecontext import Propagation, span_id, target_pattern, traceparent


async def install(
    context: BrowserContext, propagation: Propagation | None, current_step: Callable[[], str | None]
) -> None:
    """Route the scenario's own origins through `_add`; nothing at all without targets."""
    if propagation is None:
        return
    pattern = target_pattern(propagation.targets)
    if pattern is None:
        return
    trace_id = propagation.trace_id

    async def add(route: Route) -> None:
        header = traceparent(trace_id, span_id(trace_id, current_step()))
        # `fallback`, not `continue_`: a script's own routes still see the request.
        await route.fallback(headers={**route.request.headers, "traceparent": header})

    await context.route(pattern, add)
