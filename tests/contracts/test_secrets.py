"""The Redactor: every spelling of every secret, in text and in bytes, and nothing else."""

import html
import json
from urllib.parse import quote, quote_plus

from prober.contracts.secrets import MASK, Redactor

SECRET = "s3cr&t pa%ss+wörd/?="


def test_every_spelling_a_secret_leaks_in_is_masked() -> None:
    redact = Redactor([SECRET])
    for spelling in (
        SECRET,
        quote(SECRET, safe=""),
        quote_plus(SECRET),
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET, ensure_ascii=False)[1:-1],
        html.escape(SECRET),
    ):
        assert redact(f"before {spelling} after") == f"before {MASK} after", spelling
    assert redact.bytes(f"<{quote_plus(SECRET)}>".encode()) == f"<{MASK}>".encode()


def test_a_longer_secret_containing_a_shorter_one_is_masked_whole() -> None:
    redact = Redactor(["abc", "abcdef"])
    assert redact("xabcdefx") == f"x{MASK}x"


def test_secrets_added_later_are_masked_by_the_same_instance() -> None:
    redact = Redactor(["first"])
    shared = redact  # logs, runner and API hold this one object
    redact.add(["second", ""])
    assert shared("first second") == f"{MASK} {MASK}"
    assert shared.secrets == ("first", "second")  # the empty value is no secret


def test_without_secrets_text_is_left_alone() -> None:
    assert Redactor()("nothing to hide") == "nothing to hide"
    assert Redactor().bytes(b"\x00raw") == b"\x00raw"
