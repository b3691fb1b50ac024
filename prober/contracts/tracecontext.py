"""W3C trace context for runs: ids, the `traceparent` header, and where it may be sent.

The parent mints a run's trace id with its run id. Span ids are not random: each is
derived from the trace id and the step name (the run's own span from the trace id
alone), so the worker, which puts them in `traceparent`, and the parent, which exports
the spans from the run result after the fact, agree without another message between
them. A step's requests carry that step's span id as their parent: the backend's spans
hang under the step that caused them in Tempo or Jaeger. (One span id per request would
need the worker to report every request; per step is what a reader of the trace wants.)

Only the scenario's own origins get the header: those of its `goto` URLs and the hosts
it lists in `trace_propagation_hosts`. A third-party host never sees it, since an
unexpected header turns a simple CORS request into a preflight it may refuse.
"""

import hashlib
import re
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

# `host`, `*.example.com`, `host:port`, or an origin `https://host[:port]`.
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_HOST = rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:.]+\]"
PROPAGATION_HOST = rf"^(?:(?P<scheme>https?)://)?(?P<host>{_HOST})(?P<port>:[0-9]{{1,5}})?$"
DEFAULT_PORTS = {"http": 80, "https": 443}
# version 00, sampled: the run is always recorded, so its downstream spans should be too.
TRACE_FLAGS = "01"


def new_trace_id() -> str:
    """16 random bytes as hex; all-zero (invalid per the spec) is astronomically unlikely
    but refused anyway."""
    while True:
        trace_id = secrets.token_hex(16)
        if trace_id != "0" * 32:
            return trace_id


def span_id(trace_id: str, step: str | None = None) -> str:
    """The span id of a step of the run, or of the run itself (`step` None): 8 bytes hex.

    Step names are never empty, so the run's span cannot collide with a step's.
    """
    digest = hashlib.blake2b(f"{trace_id}/{step or ''}".encode(), digest_size=8).hexdigest()
    return digest if digest != "0" * 16 else "0" * 15 + "1"


def traceparent(trace_id: str, parent_span_id: str) -> str:
    return f"00-{trace_id}-{parent_span_id}-{TRACE_FLAGS}"


def check_propagation_host(entry: str) -> str:
    """A `trace_propagation_hosts` entry, lower-cased; ValueError saying what is wrong."""
    value = entry.strip().lower().rstrip("/")
    if not re.fullmatch(PROPAGATION_HOST, value):
        raise ValueError(
            f"trace propagation host {entry!r} must be a host name ('api.example.com'), "
            "a wildcard ('*.example.com'), 'host:port' or an origin "
            "('https://api.example.com:8443'), without a path"
        )
    port = re.search(r":([0-9]+)$", value)
    if port and not 0 < int(port.group(1)) < 65536:
        raise ValueError(f"trace propagation host {entry!r} has an invalid port")
    return value


def goto_origin(url: str) -> str | None:
    """`https://app.example.com:443/login` -> `https://app.example.com`; None if not http(s)."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        port = parts.port
    except ValueError:
        return None
    if port is None or port == DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


class Propagation(BaseModel):
    """What the worker needs to add `traceparent`: the trace and the origins it goes to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trace_id: str
    # Entries as check_propagation_host returns them; goto origins are entries too.
    targets: list[str]


def targets(goto_urls: Iterable[str], hosts: Iterable[str]) -> list[str]:
    """The scenario's own origins and listed hosts, each once, in order."""
    found = [origin for origin in map(goto_origin, goto_urls) if origin is not None]
    return list(dict.fromkeys([*found, *hosts]))


def target_pattern(entries: Iterable[str]) -> re.Pattern[str] | None:
    """One regex matching the request URLs that may carry `traceparent`; None for none.

    Anchored at the start of the URL and at the end of the authority, so
    `app.example.com` matches neither `app.example.com.evil.net` nor `evil.net/?app.example.com`.
    """
    alternatives = []
    for entry in entries:
        match = re.fullmatch(PROPAGATION_HOST, entry)
        if match is None:
            continue
        scheme, host, port = match["scheme"], match["host"], match["port"]
        schemes = re.escape(scheme) if scheme else "https?"
        wildcard = host.startswith("*.")
        host_re = r"[^/?#@:]+\." + re.escape(host[2:]) if wildcard else re.escape(host)
        if port:
            number = int(port[1:])
            default = scheme is not None and DEFAULT_PORTS[scheme] == number
            port_re = f"(?::{number})?" if default else f":{number}"
        elif scheme:  # an origin without a port is the scheme's default port
            port_re = f"(?::{DEFAULT_PORTS[scheme]})?"
        else:
            port_re = r"(?::[0-9]+)?"
        alternatives.append(f"{schemes}://{host_re}{port_re}")
    if not alternatives:
        return None
    return re.compile(rf"^(?:{'|'.join(alternatives)})(?:[/?#]|$)", re.IGNORECASE)
