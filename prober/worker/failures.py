"""Sorting an exception from a run into (result, reason), and a message fit for logs.

The split that matters to alerting: a target failure (`failure`, `timeout`) says the
user flow is broken; `error` says our own environment is (the browser crashed or could
not start, a script could not load), so the target alert must not fire for it.
"""

import asyncio

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from prober.contracts.result import Outcome, Reason
from prober.scenario.api import StepError
from prober.worker.actions import HttpStatusError

_CRASH_MARKERS = (
    "target crashed",
    "page crashed",
    "has been closed",
    "browser closed",
    "connection closed",
)
# Playwright's words for a selector or URL that cannot be valid on any page: our
# file is wrong (most are refused by `prober check` already; these got past it, e.g.
# through a script or a ${VAR}), so this is `error`, never the target's `failure`.
_CONFIG_MARKERS = (
    "while parsing css selector",
    "while parsing selector",
    "malformed selector",
    "is not a valid xpath expression",
    "cannot navigate to invalid url",
    "net::err_invalid_url",
)

# Chromium's certificate and TLS handshake errors (net/base/net_error_list.h).
_TLS_MARKERS = ("net::err_cert_", "net::err_ssl_", "net::err_bad_ssl_")


def classify(exc: BaseException) -> tuple[Outcome, Reason]:
    """Map an exception raised inside a run to its result and step failure reason."""
    if isinstance(exc, asyncio.CancelledError):
        return Outcome.TIMEOUT, Reason.TIMEOUT
    if isinstance(exc, PlaywrightTimeoutError):
        return Outcome.FAILURE, Reason.TIMEOUT
    if isinstance(exc, HttpStatusError):
        return Outcome.FAILURE, Reason.NAVIGATION
    if isinstance(exc, AssertionError):
        return Outcome.FAILURE, Reason.ASSERTION
    if isinstance(exc, StepError):
        return Outcome.ERROR, Reason.SCRIPT
    if isinstance(exc, PlaywrightError):
        text = exc.message.lower()
        if any(marker in text for marker in _CONFIG_MARKERS):
            return Outcome.ERROR, Reason.CONFIG
        if any(marker in text for marker in _TLS_MARKERS):
            return Outcome.FAILURE, Reason.TLS
        if any(marker in text for marker in _CRASH_MARKERS):
            return Outcome.ERROR, Reason.CRASH
        if "net::err_" in text or "navigat" in text:
            return Outcome.FAILURE, Reason.NAVIGATION
        return Outcome.FAILURE, Reason.SELECTOR
    return Outcome.FAILURE, Reason.SCRIPT


def describe(exc: BaseException) -> str:
    """One line: Playwright appends multi-line call logs we do not want in a log line.

    Not cut here: prober.contracts.protocol.encode masks secrets, then cuts.
    """
    if isinstance(exc, asyncio.CancelledError):
        return "run deadline reached"
    message = exc.message if isinstance(exc, PlaywrightError) else str(exc)
    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
