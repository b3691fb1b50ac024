"""Keeping values that came from the environment out of everything we write.

Every `${VAR}` expansion is treated as secret (DESIGN.md): credentials arrive as
environment variables from Kubernetes Secrets, and we cannot tell a password from a
URL. A value can leak in several spellings (a login POST carries it URL-encoded, an
error message may JSON- or HTML-escape it), so each spelling is scrubbed.
"""

import html
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "********"


def _spellings(secret: str) -> set[str]:
    as_json = json.dumps(secret, ensure_ascii=False)[1:-1]  # JSON.stringify's spelling
    return {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        # A browser's form encoding (WHATWG) and JavaScript's encodeURIComponent.
        quote_plus(secret, safe="*").replace("~", "%7E"),
        quote(secret, safe="!~*'()"),
        json.dumps(secret)[1:-1],
        as_json,
        # A Playwright trace logs `fill("<value>")` inside a JSON string: escaped twice.
        json.dumps(as_json, ensure_ascii=False)[1:-1],
        html.escape(secret),
        # repr(), as in f"{value!r}" or a KeyError's message: escaped for either quote.
        repr(secret)[1:-1],
        repr(secret + "'\"")[1:-4],
    }


class Redactor:
    """Replaces every known secret, in every spelling we know of, with a mask."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: tuple[str, ...] = ()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these too, in place: one instance is shared by logs, runner and API, so a
        reloaded scenario file's new secrets are masked everywhere at once."""
        self.secrets = tuple(sorted({*self.secrets, *(s for s in secrets if s)}))
        spellings = {s for secret in self.secrets for s in _spellings(secret)}
        # Longest first, so that a secret containing another is masked whole.
        ordered = sorted(spellings, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def bytes(self, data: bytes) -> bytes:
        """Scrub raw bytes (files written by the browser) without decoding them as a whole."""
        if self._pattern is None:
            return data
        pattern = re.compile(self._pattern.pattern.encode())
        return pattern.sub(MASK.encode(), data)
