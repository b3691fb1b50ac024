"""The worker protocol: every event survives encode -> decode, and nothing else decodes."""

import json

import pytest

from prober.contracts import protocol
from prober.contracts.protocol import MAX_TEXT, ProtocolError, decode, encode
from prober.contracts.result import Outcome, Reason
from prober.contracts.secrets import MASK, Redactor, is_short

EVENTS: list[protocol.Event] = [
    protocol.BrowserLaunched(duration_seconds=0.8, browser_version="120.0.6099.71"),
    protocol.StepStarted(step="app_page_loaded"),
    protocol.StepFinished(step="app_page_loaded", duration_seconds=0.52, ok=True),
    protocol.StepFinished(
        step="login", duration_seconds=1.5, ok=False, reason=Reason.SELECTOR, error="no button"
    ),
    protocol.PageTimingReported(
        step="app_page_loaded", phases={"ttfb": 0.02, "load": 0.3}, cumulative_layout_shift=0.01
    ),
    protocol.RequestsCounted(step="app_page_loaded", requests=12, http_4xx=1),
    protocol.RequestFailed(
        step="app_page_loaded", method="GET", url="https://app.example/x?t=********", status=503
    ),
    protocol.RequestFailed(
        step="login",
        method="POST",
        url="https://idp.example/",
        error="net::ERR_CERT_AUTHORITY_INVALID",
    ),
    protocol.CertificateSeen(host="idp.example.com:8443", expires_at=1_790_000_000.0),
    protocol.ArtifactKept(name="20261124T070512Z-3f9a1c2b-trace.zip"),
    protocol.ArtifactFailed(error="OSError: [Errno 28] No space left on device"),
    protocol.RunFinished(result=Outcome.FAILURE, duration_seconds=2.41, failed_step="login"),
    protocol.RunFinished(result=Outcome.ERROR, error="browser launch failed"),
    protocol.RunEnded(browser_crashed=True),
    protocol.SlotReady(browser_version="156.0.8078.79"),
    protocol.SlotReady(error="Executable doesn't exist"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.event)
def test_every_event_round_trips(event: protocol.Event) -> None:
    line = encode(event)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line) == event


@pytest.mark.parametrize(
    ("line", "fault"),
    [
        (b"hello from a confused worker\n", "Invalid JSON"),
        (b'{"step": "x"}\n', "event"),
        (b'{"event": "step_exploded", "step": "x"}\n', "event"),
        (b'{"event": "step_started"}\n', "step"),
        (b'{"event": "step_started", "step": "x", "extra": 1}\n', "extra"),
        (
            b'{"event": "step_finished", "step": "x", "duration_seconds": true, "ok": true}',
            "duration",
        ),
        (
            b'{"event": "step_finished", "step": "x", "duration_seconds": -1, "ok": true}',
            "duration",
        ),
        (b'{"event": "run_finished", "result": "fine"}', "result"),
        (b'{"event": "run_finished", "result": "failure", "reason": "bad luck"}', "reason"),
        (b'{"event": "page_timing", "step": "x", "phases": {"ttfb": 1e9}}', "ttfb"),
        (b'{"event": "page_timing", "step": "x", "phases": {"ttfb": -1}}', "ttfb"),
        (b'{"event": "page_timing", "step": "x", "phases": {"tea_break": 1}}', "tea_break"),
        (b'{"event": "page_timing", "step": "x", "phases": {"load": "slow"}}', "load"),
        (b'{"event": "requests_counted", "step": "x", "requests": -1}', "requests"),
        (b'{"event": "certificate", "host": "a b", "expires_at": 1}', "host"),
        (
            b'{"event": "request_failed", "step": "x", "method": "GET", "url": "/", "status": 200}',
            "status",
        ),
    ],
)
def test_what_is_not_an_event_is_rejected_with_the_field_named(line: bytes, fault: str) -> None:
    with pytest.raises(ProtocolError, match="not an event") as raised:
        decode(line)
    assert fault in str(raised.value)


@pytest.mark.parametrize("secret", ["1", "4", "event"])
def test_a_short_secret_is_masked_in_values_without_touching_keys_or_numbers(
    secret: str,
) -> None:
    """The old regex over the encoded line turned `"duration_seconds":0.41` into garbage."""
    redact = Redactor([secret])
    event = protocol.StepFinished(
        step="credentials_accepted",
        duration_seconds=0.41,
        ok=False,
        reason=Reason.SELECTOR,
        error=f"Error: typed '{secret}' into the field, event 1410",
    )
    line = encode(event, redact)
    data = json.loads(line)
    assert sorted(data) == [
        "component",
        "duration_seconds",
        "error",
        "event",
        "ok",
        "reason",
        "step",
    ]
    assert data["duration_seconds"] == 0.41
    assert (data["event"], data["reason"]) == ("step_finished", "selector")
    assert f"'{MASK}'" in data["error"]
    if is_short(secret):  # masked as a whole value only (prober.contracts.secrets)
        assert data["error"].endswith("1410")
    else:
        assert secret not in data["error"].replace(MASK, "")
    decoded = decode(line)
    assert isinstance(decoded, protocol.StepFinished) and decoded.duration_seconds == 0.41


def test_every_string_value_is_masked_not_only_errors() -> None:
    redact = Redactor(["hunter2"])
    # A script may name a step after a value it was given; the name is masked too.
    line = encode(protocol.StepStarted(step="as_hunter2"), redact)
    assert b"hunter2" not in line
    assert decode(line) == protocol.StepStarted(step=f"as_{MASK}")


def test_free_text_is_masked_then_cut() -> None:
    secret = "p" * 20
    # The secret straddles the cut: cutting first would leave part of it in the line.
    text = "x" * (MAX_TEXT - 10) + secret + "y" * 100
    event = decode(
        encode(protocol.RunFinished(result=Outcome.ERROR, error=text), Redactor([secret]))
    )
    assert isinstance(event, protocol.RunFinished) and event.error is not None
    assert len(event.error) == MAX_TEXT and event.error.endswith("…")
    assert "p" not in event.error
