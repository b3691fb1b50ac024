"""Request accounting: how many requests each step made, and which of them failed.

A step that got slow or failed often did so because one request did: an API answering
500, a script blocked by a proxy. Every request the run's browser context makes
(documents, scripts, XHR, images; the page and its popups) belongs to the step running
when the page issued it, even if it completes after that step ended.

A request failed if it got no answer (a network error: connection refused, DNS, TLS,
reset) or an HTTP status >= 400. Requests the browser itself cancelled
(`net::ERR_ABORTED`: the page navigated away, a fetch was aborted) count as requests
but not as failures: the target did nothing wrong.

Failed requests are also reported one by one, the first MAX_FAILED_REQUESTS of a run, with the
URL's query values and fragment masked: query strings carry tokens (OAuth codes, API
keys, signatures) that no scenario file declares as secrets. `encode` masks the
declared secrets left in the path or error text.
"""

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, quote, urlsplit, urlunsplit

from playwright.async_api import BrowserContext, Request, Response

from prober.contracts.protocol import MAX_FAILED_REQUESTS, Event, RequestFailed, RequestsCounted
from prober.contracts.result import RequestFailure
from prober.contracts.secrets import MASK

# The step of requests issued before the first step starts (none, in practice).
NO_STEP = ""
_CANCELLED = "net::ERR_ABORTED"


def safe_url(url: str) -> str:
    """`url` fit for a result: no user info, query values masked, no fragment.

    Query names stay (`?token=********&page=********`): they say which endpoint variant failed.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    netloc = host if port is None else f"{host}:{port}"
    if ":" in host:  # an IPv6 address
        netloc = f"[{host}]" if port is None else f"[{host}]:{port}"
    query = "&".join(f"{quote(name, safe='')}={MASK}" for name, _ in parse_qsl(parts.query, True))
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, ""))


@dataclass
class _Counts:
    requests: int = 0
    network: int = 0
    http_4xx: int = 0
    http_5xx: int = 0


class RequestLog:
    """Worker side: listens to a context's requests and reports them as events."""

    def __init__(
        self, current_step: Callable[[], str | None], emit: Callable[[Event], None]
    ) -> None:
        self._current_step = current_step
        self._emit = emit
        self._steps: dict[str, _Counts] = {}
        # The step of each request in flight; a redirect is a new request of the same step.
        self._owner: dict[Request, str] = {}
        self._changed: set[str] = set()
        self._listed = 0

    def install(self, context: BrowserContext) -> None:
        context.on("request", self._request)
        context.on("response", self._response)
        context.on("requestfailed", self._failed)
        context.on("requestfinished", self._finished)

    def flush(self) -> None:
        """Report the counts of every step that changed since the last flush."""
        for step in sorted(self._changed):
            counts = self._steps[step]
            self._emit(
                RequestsCounted(
                    step=step,
                    requests=counts.requests,
                    network=counts.network,
                    http_4xx=counts.http_4xx,
                    http_5xx=counts.http_5xx,
                )
            )
        self._changed.clear()

    def _request(self, request: Request) -> None:
        step = self._current_step() or NO_STEP
        self._owner[request] = step
        self._counts(step).requests += 1

    def _response(self, response: Response) -> None:
        status = response.status
        if status < 400:
            return
        kind: RequestFailure = "http_5xx" if status >= 500 else "http_4xx"
        self._fail(response.request, kind, status=status)

    def _failed(self, request: Request) -> None:
        error = request.failure or "network error"
        if error.startswith(_CANCELLED):
            self._owner.pop(request, None)
            return
        self._fail(request, "network", error=error)

    def _finished(self, request: Request) -> None:
        self._owner.pop(request, None)

    def _fail(
        self,
        request: Request,
        kind: RequestFailure,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        # A response that fails while its body loads is one failure, counted as its status.
        step = self._owner.pop(request, None)
        if step is None:
            return
        counts = self._counts(step)
        setattr(counts, kind, getattr(counts, kind) + 1)
        if self._listed < MAX_FAILED_REQUESTS:
            self._listed += 1
            self._emit(
                RequestFailed(
                    step=step,
                    method=request.method[:32],
                    url=safe_url(request.url),
                    status=status,
                    error=error,
                )
            )

    def _counts(self, step: str) -> _Counts:
        self._changed.add(step)
        return self._steps.setdefault(step, _Counts())
