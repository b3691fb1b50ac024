"""Selectors and URLs a browser could never accept, caught when the file is loaded.

A typo in our own file must not page as "target down": `nosuchengine=foo` or `[[[[`
would otherwise run and fail every step as the target's `failure`. What can be decided
without a browser is decided here: Playwright's selector syntax (parts split on `>>`,
an `engine=` prefix chosen as Playwright chooses it, the engine one it ships), CSS and
XPath that cannot parse because a bracket or quote is never closed, and goto URLs
that are not absolute http(s) (or `data:`/`about:`). Whatever still slips through is
recognised at run time by `prober.worker.failures` and reported as `error`, reason `config`.

Messages quote the selector (it is masked afterwards if it came from the environment)
but never a URL: a URL usually carries `${VAR}`s, and the caller names them instead.
"""

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator

# Playwright's built-in engines (its injected script's list, 1.4x-1.5x); custom
# engines need `selectors.register`, which a YAML scenario cannot call.
ENGINES = frozenset(
    {
        *(
            base + light
            for base in ("css", "xpath", "text", "id", "data-testid", "data-test-id", "data-test")
            for light in ("", ":light")
        ),
        "role",
        "nth",
        "visible",
        "aria-ref",
        "_react",
        "_vue",
        "internal:control",
        "internal:has",
        "internal:has-not",
        "internal:has-text",
        "internal:has-not-text",
        "internal:and",
        "internal:or",
        "internal:chain",
        "internal:attr",
        "internal:label",
        "internal:text",
        "internal:role",
        "internal:testid",
        "internal:describe",
    }
)
_ENGINE_NAME = re.compile(r"^[a-zA-Z_0-9\-+:*]+$")
_CLOSING = {"(": ")", "[": "]", "{": "}"}
URL_SCHEMES = ("http", "https")
# Documents without a host that a browser loads as such (a test page, a blank reset).
HOSTLESS_SCHEMES = ("data", "about")


def check_selector(selector: str) -> str:
    """Return the selector unchanged, or raise ValueError saying what no browser accepts."""
    if not selector.strip():
        raise ValueError("selector is empty")
    for engine, body in _parts(selector):
        if engine not in ENGINES:
            known = "css, xpath, text, role, id, data-testid, nth, visible"
            raise ValueError(f"unknown selector engine '{engine}' (Playwright's are {known}, …)")
        if not body.strip() and engine != "css":
            raise ValueError(f"selector part '{engine}=' has nothing after the '='")
        if engine in ("css", "css:light", "xpath", "xpath:light"):
            kind = "CSS" if engine.startswith("css") else "XPath"
            if not body.strip():
                raise ValueError("selector is empty (or has an empty part around '>>')")
            problem = _unbalanced(body)
            if problem:
                raise ValueError(f"{kind} '{body.strip()}' cannot parse: {problem}")
            if kind == "CSS" and body.rstrip()[-1] in ">+~,":
                raise ValueError(f"CSS '{body.strip()}' cannot parse: it ends in a combinator")
        if engine == "nth" and not re.fullmatch(r"\s*-?\d+\s*", body):
            raise ValueError(f"'nth={body}' needs an integer index")
        if engine == "visible" and body.strip() not in ("true", "false"):
            raise ValueError(f"'visible={body}' must be true or false")
    return selector


def check_url(url: str) -> str:
    """Return an absolute http(s) (or data:, about:) URL unchanged; never quote it."""
    if url.split(":", 1)[0].lower() in HOSTLESS_SCHEMES and ":" in url:
        return url
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise ValueError("not a valid URL (a bracket or port is malformed)") from None
    if parts.scheme.lower() not in URL_SCHEMES or not parts.hostname or not port_ok:
        raise ValueError("not an absolute http(s) URL, e.g. https://app.example/login")
    # Elsewhere a browser percent-encodes white space (a password in a query or in the
    # userinfo, say); only the host itself can never hold it.
    if any(c.isspace() for c in parts.netloc.rpartition("@")[2]):
        raise ValueError("not a valid URL: its host contains white space")
    return url


Selector = Annotated[str, AfterValidator(check_selector)]
"""A Playwright selector that is at least well-formed."""

Url = Annotated[str, AfterValidator(check_url)]
"""An absolute http(s) URL, or a data: or about: one."""


def _parts(selector: str) -> list[tuple[str, str]]:
    """Split like Playwright's parseSelectorString: `>>` outside quotes, then `engine=`."""
    parts: list[tuple[str, str]] = []
    chunks: list[str] = []
    if ">>" not in selector:
        chunks.append(selector)
    else:
        start = index = 0
        quote: str | None = None
        while index < len(selector):
            char = selector[index]
            if char == "\\" and index + 1 < len(selector):
                index += 2
            elif char == quote:
                quote = None
                index += 1
            elif quote is None and char in "\"'`" and not _in_text(selector[start:index]):
                quote = char
                index += 1
            elif quote is None and selector.startswith(">>", index):
                chunks.append(selector[start:index])
                index += 2
                start = index
            else:
                index += 1
        chunks.append(selector[start:])
    for chunk in chunks:
        part = chunk.strip()
        name, equals, body = part.partition("=")
        if equals and _ENGINE_NAME.match(name.strip()):
            engine = name.strip().removeprefix("*")
        elif len(part) > 1 and part[0] == part[-1] and part[0] in "\"'":
            engine, body = "text", part
        elif re.match(r"^\(*//", part) or part.startswith(".."):
            engine, body = "xpath", part
        else:
            engine, body = "css", part
        parts.append((engine, body))
    return parts


def _in_text(prefix: str) -> bool:
    """Playwright does not treat quotes inside an unquoted `text=` body as quoting."""
    match = re.match(r"^\s*text\s*=(.*)$", prefix, re.DOTALL)
    return bool(match and match.group(1))


def _unbalanced(body: str) -> str | None:
    """The first bracket or quote that is never closed (or closed without opening)."""
    stack: list[str] = []
    quote: str | None = None
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            index += 2
            continue
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in _CLOSING:
            stack.append(char)
        elif char in _CLOSING.values() and (not stack or _CLOSING[stack.pop()] != char):
            return f"'{char}' closes nothing"
        index += 1
    if quote is not None:
        return f"a {quote} quote is never closed"
    if stack:
        return f"'{stack[-1]}' is never closed"
    return None
