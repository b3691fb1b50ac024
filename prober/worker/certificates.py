"""Server certificates of the HTTPS documents a run loads, for the expiry metric.

Only main-frame documents (the pages a user navigates to: the app, the IdP), not
sub-resources or iframes: a CDN or an analytics host is not what the probe watches,
and every host is a label value, so they must stay few (MAX_CERTIFICATE_HOSTS per run).
A host that shows a secret (a credential in a host name, `${...}` in a URL) is dropped
rather than masked: a masked label value would mean nothing.
"""

import asyncio
import contextlib
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from playwright.async_api import BrowserContext, Response
from playwright.async_api import Error as PlaywrightError

from prober.contracts.protocol import (
    HOST_LABEL,
    MAX_CERTIFICATE_HOSTS,
    CertificateSeen,
    Event,
)
from prober.contracts.secrets import Redactor

_HOST = re.compile(HOST_LABEL)


def certificate_host(url: str) -> str | None:
    """`idp.example.com`, `idp.example.com:8443`, `[::1]:8443`; None if not an https URL."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme != "https" or not host:
        return None
    name = f"[{host}]" if ":" in host else host.lower().rstrip(".")
    label = name if port in (None, 443) else f"{name}:{port}"
    return label if _HOST.match(label) and len(label) <= 260 else None


class CertificateWatch:
    """Worker side: reports each main-frame HTTPS host's certificate once per run."""

    def __init__(self, redact: Redactor, emit: Callable[[Event], None]) -> None:
        self._redact = redact
        self._emit = emit
        self._hosts: set[str] = set()
        self._pending: set[asyncio.Task[None]] = set()

    def install(self, context: BrowserContext) -> None:
        context.on("response", self._response)

    async def settle(self) -> None:
        """Wait for certificate reads still in flight (the caller bounds the wait)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def _response(self, response: Response) -> None:
        request = response.request
        if request.resource_type != "document":
            return
        with contextlib.suppress(PlaywrightError):
            if response.frame.parent_frame is not None:
                return
        host = certificate_host(response.url)
        if host is None or host in self._hosts or len(self._hosts) >= MAX_CERTIFICATE_HOSTS:
            return
        if self._redact(host) != host:
            return
        self._hosts.add(host)
        task = asyncio.get_running_loop().create_task(self._read(response, host))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _read(self, response: Response, host: str) -> None:
        try:
            details = await response.security_details()
        except PlaywrightError:
            details = None
        expires = details.get("validTo") if details else None
        if isinstance(expires, int | float) and not isinstance(expires, bool) and expires > 0:
            self._emit(CertificateSeen(host=host, expires_at=float(expires)))
        else:
            self._hosts.discard(host)  # the next document of that host may tell
