"""Trace ids, span ids and which URLs may carry `traceparent`."""

import re

import pytest

from prober.contracts.tracecontext import (
    check_propagation_host,
    goto_origin,
    new_trace_id,
    span_id,
    target_pattern,
    targets,
    traceparent,
)


def test_ids_have_the_w3c_shapes_and_span_ids_are_derived_not_random() -> None:
    trace_id = new_trace_id()
    assert re.fullmatch("[0-9a-f]{32}", trace_id) and trace_id != new_trace_id()
    run, step = span_id(trace_id), span_id(trace_id, "login")
    assert re.fullmatch("[0-9a-f]{16}", run) and re.fullmatch("[0-9a-f]{16}", step)
    assert run != step and step == span_id(trace_id, "login")  # parent and worker agree
    assert span_id(new_trace_id(), "login") != step
    assert traceparent(trace_id, step) == f"00-{trace_id}-{step}-01"


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://App.Example.com/login?x=1", "https://app.example.com"),
        ("https://app.example.com:443/", "https://app.example.com"),
        ("http://127.0.0.1:8080/x", "http://127.0.0.1:8080"),
        ("http://[::1]:9000/", "http://[::1]:9000"),
        ("about:blank", None),
        ("data:text/html,hi", None),
    ],
)
def test_goto_origin(url: str, origin: str | None) -> None:
    assert goto_origin(url) == origin


PATTERN = target_pattern(
    targets(
        ["http://127.0.0.1:8080/x", "https://app.example.com/login"],
        ["*.api.example.com", "api.corp:9000", "auth.corp"],
    )
)


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        ("http://127.0.0.1:8080/a", True),
        ("http://127.0.0.1:8081/a", False),  # another port is another origin
        ("https://127.0.0.1:8080/a", False),  # and so is another scheme
        ("https://app.example.com/", True),
        ("https://app.example.com:443/x", True),
        ("http://app.example.com/", False),
        ("https://app.example.com.evil.net/", False),
        ("https://evil.net/?u=https://app.example.com/", False),
        ("https://x.app.example.com/", False),  # a goto origin is that host only
        ("https://eu.api.example.com:8443/v1", True),
        ("https://api.example.com/", False),  # `*.` means subdomains
        ("http://api.corp:9000/", True),
        ("http://api.corp/", False),
        ("https://auth.corp/token", True),  # a bare host: any scheme, any port
        ("http://auth.corp:8080/token", True),
        ("https://cdn.thirdparty.net/lib.js", False),
    ],
)
def test_only_the_scenarios_own_origins_match(url: str, sent: bool) -> None:
    assert PATTERN is not None
    assert bool(PATTERN.match(url)) is sent


def test_no_targets_no_pattern() -> None:
    assert target_pattern(targets(["about:blank"], [])) is None


@pytest.mark.parametrize(
    "entry", ["api.example.com", "*.example.com", "api:8443", "https://api.example.com:8443"]
)
def test_propagation_hosts_accepted(entry: str) -> None:
    assert check_propagation_host(entry.upper() + "/") == entry


@pytest.mark.parametrize(
    "entry", ["", "*", "*.", "https://api.example.com/v1", "ftp://x", "a b", "x:99999", "a_b.com"]
)
def test_propagation_hosts_refused_with_what_is_wrong(entry: str) -> None:
    with pytest.raises(ValueError, match="trace propagation host"):
        check_propagation_host(entry)
