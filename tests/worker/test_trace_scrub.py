"""Scrubbing a trace zip, and the spellings of a secret that browsers and traces produce."""

import hashlib
import json
import zipfile
from pathlib import Path

from prober.contracts.secrets import MASK, Redactor
from prober.worker.capture import scrub_trace
from tests.artifact_checks import spellings, text_spellings

# Characters that each encoder treats differently: form encoding keeps `*` and escapes
# `~`, encodeURIComponent keeps `!'()*~`, JSON escapes `"` and `\`, HTML escapes `<&"'`.
AWKWARD = "p*a~s!s'(w)\"o\\r<d> ö&+/?= "


def test_every_spelling_of_an_awkward_secret_is_masked() -> None:
    redact = Redactor([AWKWARD])
    for text in text_spellings(AWKWARD):
        assert redact(f"<{text}>") == f"<{MASK}>", text
        assert redact.bytes(f"<{text}>".encode()) == f"<{MASK}>".encode(), text


def test_browser_form_encoding_is_masked() -> None:
    # What Chromium sends for <input name=p value="a*b~c d"> in a urlencoded POST.
    assert Redactor(["a*b~c d"])("p=a*b%7Ec+d") == f"p={MASK}"


def test_trace_members_are_scrubbed_and_renamed_resources_stay_referenced(tmp_path: Path) -> None:
    body = f"login=u&password={AWKWARD}".encode()
    old = hashlib.sha1(body).hexdigest()
    untouched = b"\x89PNG binary without secrets"
    keep = hashlib.sha1(untouched).hexdigest()
    network = json.dumps({"postData": {"_sha1": f"{old}.dat", "text": AWKWARD}}) + "\n"
    source, target = tmp_path / "raw.zip", tmp_path / "scrubbed.zip"
    with zipfile.ZipFile(source, "w") as raw:
        raw.writestr("trace.network", network)
        raw.writestr("trace.trace", json.dumps({"params": {"value": AWKWARD}}) + "\n")
        raw.writestr(f"resources/{old}.dat", body)
        raw.writestr(f"resources/{keep}.png", untouched)

    scrub_trace(source, target, Redactor([AWKWARD]))

    with zipfile.ZipFile(target) as scrubbed:
        new = hashlib.sha1(f"login=u&password={MASK}".encode()).hexdigest()
        assert sorted(scrubbed.namelist()) == sorted(
            ["trace.network", "trace.trace", f"resources/{new}.dat", f"resources/{keep}.png"]
        )
        record = json.loads(scrubbed.read("trace.network"))
        assert record == {"postData": {"_sha1": f"{new}.dat", "text": MASK}}
        assert json.loads(scrubbed.read("trace.trace")) == {"params": {"value": MASK}}
        assert scrubbed.read(f"resources/{keep}.png") == untouched
        for name in scrubbed.namelist():
            data = scrubbed.read(name)
            assert not [s for s in spellings((AWKWARD,)) if s in data], name
