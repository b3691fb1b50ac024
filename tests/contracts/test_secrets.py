"""Masking: every spelling of a secret, embedded in text, is masked and nothing else is.

The spellings come from tests/artifact_checks.py, which lists real encoders (WHATWG
percent-encode sets, Jinja2/Go/Rails entities, Go's JSON, repr, base64) without
sharing the Redactor's construction.
"""

import base64
import json
import random
import string

import pytest

from prober.contracts.secrets import MASK, MIN_LENGTH, Redactor, is_short
from tests.artifact_checks import base64_cores, text_spellings

PASSWORD = "p@ss w0rd!&x=1\"<'>"
LOGIN = "probe+name@example.com"
# Characters each encoder treats differently, non-ASCII and astral ones included.
SPECIAL = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ \tö€😀"
ALPHABET = string.ascii_letters + string.digits + SPECIAL


def random_secret(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(MIN_LENGTH, 24)))


@pytest.mark.parametrize("secret", [PASSWORD, LOGIN, "AKIA/Zx+9=Ünïcødé"])
def test_every_spelling_embedded_in_text_is_masked(secret: str) -> None:
    redact = Redactor([secret])
    for text in text_spellings(secret):
        assert redact(f"before {text} after") == f"before {MASK} after", text
        data = f"before {text} after".encode()
        assert redact.bytes(data) == f"before {MASK} after".encode(), text


def test_random_secrets_in_every_spelling() -> None:
    rng = random.Random(20240610)
    for _ in range(40):
        secret = random_secret(rng)
        redact = Redactor([secret])
        for text in text_spellings(secret):
            assert redact(f"«{text}»") == f"«{MASK}»", (secret, text)


def test_base64_at_every_alignment_inside_longer_base64() -> None:
    rng = random.Random(7)
    for _ in range(30):
        secret = random_secret(rng)
        redact = Redactor([secret])
        prefix = rng.randbytes(rng.randint(0, 5))
        suffix = rng.randbytes(rng.randint(0, 5))
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(prefix + secret.encode() + suffix).decode()
            masked = redact(f"data:{text};")
            assert MASK in masked, (secret, text)
            assert not [core for core in base64_cores(secret.encode()) if core in masked]


def test_http_basic_credentials_are_masked() -> None:
    redact = Redactor([LOGIN, PASSWORD])
    header = "Basic " + base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()
    masked = redact(f"authorization: {header}")
    cores = base64_cores(LOGIN.encode()) | base64_cores(PASSWORD.encode())
    assert not [core for core in cores if core in masked], masked


def test_repr_forms_of_exceptions_are_masked() -> None:
    redact = Redactor([PASSWORD])
    for error in (AssertionError(f"wrong password {PASSWORD!r}"), KeyError(PASSWORD)):
        assert PASSWORD not in redact(str(error)) and MASK in redact(str(error))
        assert MASK in redact(repr(error)), repr(error)


def test_lowered_host_and_upper_case_percent_hex() -> None:
    redact = Redactor(["Tenant42x"])
    assert redact("http://tenant42x.localhost:8080/") == f"http://{MASK}.localhost:8080/"
    assert Redactor(["a/b?c"])("x=a%2fb%3fc&y=A%2Fb%3Fc") == f"x={MASK}&y={MASK}"


def test_text_without_secrets_is_untouched() -> None:
    rng = random.Random(3)
    for _ in range(8):
        redact = Redactor([random_secret(rng) for _ in range(3)])
        # Text from an alphabet no secret was drawn from cannot contain one.
        text = "".join(rng.choice("ÀÉÎÕÜ°§¶·") for _ in range(2000))
        assert redact(text) == text
        assert redact.bytes(text.encode()) == text.encode()
    sample = json.dumps({"url": "https://example.com/a?b=c&d=%2F", "n": 1.5, "s": "a\\u0026b"})
    assert Redactor([PASSWORD, LOGIN])(sample) == sample


def test_a_secret_containing_another_is_masked_whole() -> None:
    redact = Redactor(["secret", "secret-and-more"])
    assert redact("[secret-and-more] [secret]") == f"[{MASK}] [{MASK}]"


def test_non_ascii_secret_in_latin1_bytes() -> None:
    # A page served as ISO-8859-1 stores `ö` as one byte.
    assert Redactor(["pässwörd"]).bytes("[pässwörd]".encode("latin-1")) == f"[{MASK}]".encode()


def test_short_secrets_are_masked_as_whole_values_only() -> None:
    redact = Redactor(["12"])
    assert is_short("12") and redact.short == ("12",)
    assert redact("12") == MASK
    line = '{"duration_seconds":12.4012,"attempt":12,"pin":"12","12": 1}'
    assert redact(line) == f'{{"duration_seconds":12.4012,"attempt":12,"pin":"{MASK}","12": 1}}'
    assert redact("POST /login?pin=12&next=/ in 12 ms") == f"POST /login?pin={MASK}&next=/ in 12 ms"
    assert redact("expected '12'") == f"expected '{MASK}'"
    assert redact("<td>12</td> step 12 of 120") == f"<td>{MASK}</td> step 12 of 120"
    assert redact.bytes(b'"value":"12"') == f'"value":"{MASK}"'.encode()


def test_value_masks_strings_and_keeps_structure() -> None:
    redact = Redactor([PASSWORD, "7"])
    value = {"text": f"got {PASSWORD}", "list": ["7", 7, 7.5, None, True], "7": "x"}
    assert redact.value(value) == {
        "text": f"got {MASK}",
        "list": [MASK, 7, 7.5, None, True],
        "7": "x",
    }


def test_add_masks_new_secrets_in_place() -> None:
    redact = Redactor([PASSWORD])
    redact.add([LOGIN, ""])
    assert redact.secrets == tuple(sorted([PASSWORD, LOGIN]))
    assert redact(f"{LOGIN} {PASSWORD}") == f"{MASK} {MASK}"
    assert redact.bytes(LOGIN.encode()) == MASK.encode()


def test_add_after_use_masks_the_new_secrets_in_text_and_bytes() -> None:
    # The patterns are compiled lazily, on first use: a use before `add` must not
    # leave the old patterns in place.
    redact = Redactor([PASSWORD])
    assert redact(PASSWORD) == MASK and redact.bytes(PASSWORD.encode()) == MASK.encode()
    redact.add([LOGIN])
    assert redact(f"{LOGIN} {PASSWORD}") == f"{MASK} {MASK}"
    assert redact.bytes(LOGIN.encode()) == MASK.encode()


def test_patterns_stored_late_by_a_thread_for_older_secrets_are_not_used() -> None:
    redact = Redactor([PASSWORD])
    redact("warm")
    stale = redact._text  # what a thread that compiled before the `add` would store
    redact.add([LOGIN])
    redact._text = stale
    assert redact(LOGIN) == MASK
