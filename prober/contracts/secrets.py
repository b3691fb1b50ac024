"""Keeping values that came from the environment out of everything we write.

Every `${VAR}` expansion is treated as secret (DESIGN.md): credentials arrive as
environment variables from Kubernetes Secrets, and we cannot tell a password from a
URL. A value leaks in many spellings: a browser percent-encodes it in a URL (WHATWG
sets, form encoding with `+`, lower-cased hosts), a page may echo it HTML-escaped
(`&#34;`, `&quot;`, `&#x27;`), JSON-escaped (`\\u0026`, `\\"`), `repr()`-quoted, doubly
encoded, or in base64 (HTTP Basic). Listing spellings one by one always misses one, so
each character of a secret becomes a small regex of every way it can be written, and
a spelling is any sequence of those: mixed and partial escaping (Jinja2 escapes `'`,
`html.escape` does not, the DOM escapes only `&<>` in text) are covered by construction.

All secrets are one compiled alternation whose branches each start with a literal
character, so `re` scans for the first characters only: a 5 MB trace takes a fraction
of a second (bench/ measures it).

Secrets shorter than MIN_LENGTH cannot be masked as substrings: a PIN `1` is in every
number we write. They are masked only where they are a whole value: a string equal
to them, a quoted string (`"1"`, `'1'`), a form or query value (`=1&`) or an element's
text (`>1<`). `prober check` warns about them, naming the variable. Secrets made of
digits only (TOTP codes, PINs) are masked the same way whatever their length.
"""

import base64
import contextlib
import html.entities
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

MASK = "********"
# Below this many characters a secret is masked as a whole value only (see above).
MIN_LENGTH = 5
# A base64 core shorter than this would match random base64 data (images in a trace).
_MIN_BASE64_CORE = 6

# `%`, `\` and `&` start an escape; each may itself be escaped (double percent-encoding,
# a JSON string inside a JSON string, `&amp;#34;`, Go's `\u0026#34;`, `%5C%22`).
_PCT = ("%", "(?:25)*")
_BACKSLASH = (("\\\\", r"(?:\\|%(?:25)*5[cC])*"), ("%", r"(?:25)*5[cC](?:\\|%(?:25)*5[cC])*"))
_AMPERSAND = (
    ("&", "(?:amp;)*"),
    ("\\\\", r"\\*[xX]26(?:amp;)*|\\*u0026(?:amp;)*"),
    ("%", "(?:25)*26(?:amp;)*"),
)
_SHORT_ESCAPES = {"\n": "n", "\t": "t", "\r": "r", "\b": "b", "\f": "f", "\v": "v", "\0": "0"}
_ENTITY_NAMES: dict[str, list[str]] = defaultdict(list)
for _name, _char in html.entities.html5.items():
    if len(_char) == 1 and _name.endswith(";"):
        _ENTITY_NAMES[_char].append(_name)

# A form: (regex for its first character, regex for the rest), so that the first
# character of every branch of the big alternation can be a literal.
Form = tuple[str, str]
T = TypeVar("T")


def is_short(secret: str) -> bool:
    """Too short to mask inside free text without masking unrelated text."""
    return len(secret) < MIN_LENGTH


def _whole_values_only(secret: str) -> bool:
    """Short secrets, and secrets made of digits only (a TOTP code, a PIN): a 6-digit
    code is inside timestamps and durations of every trace, where masking it would
    corrupt the numbers (and JSON) and say nothing about the code."""
    return is_short(secret) or (secret.isascii() and secret.isdigit())


def _hex(number: int, width: int = 2) -> str:
    """Hex digits in either case: `%2f` and `%2F`, `&#x27;` and `&#X27;`."""
    digits = format(number, f"0{width}x")
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in digits)


def _literal(text: str, binary: bool) -> Form:
    """A literal, split after its first character (its first UTF-8 byte for bytes)."""
    if not binary:
        return re.escape(text[0]), re.escape(text[1:])
    escaped = [re.escape(chr(b)) if b < 0x80 else f"\\x{b:02x}" for b in text.encode()]
    return escaped[0], "".join(escaped[1:])


def _joined(forms: Iterable[Form]) -> str:
    return "|".join(head + tail for head, tail in forms)


def _percent(char: str) -> list[Form]:
    code = ord(char)
    utf8 = char.encode()
    forms = [
        (_PCT[0], _PCT[1] + _hex(utf8[0]) + "".join("%" + _PCT[1] + _hex(b) for b in utf8[1:]))
    ]
    if 0x80 <= code < 0x100:
        forms.append((_PCT[0], _PCT[1] + _hex(code)))  # Latin-1, as JavaScript's escape()
    elif code >= 0x100:
        forms.append((_PCT[0], _PCT[1] + "[uU]" + _hex(code, 4)))
    return forms


def _entities(char: str) -> list[str]:
    """Bodies of HTML character references after the `&`: `#34;`, `#x22;`, `quot;`."""
    code = ord(char)
    names = [re.escape(name) for name in _ENTITY_NAMES.get(char, [])]
    return [f"#0*{code};", f"#[xX]0*{_hex(code, 1)};", *names]


def _escapes(char: str) -> list[str]:
    """Bodies of JSON, JavaScript and Python escapes after the backslash."""
    code = ord(char)
    if code < 0x10000:
        bodies = ["u" + _hex(code, 4)]
    else:  # a UTF-16 surrogate pair in JSON, `\U0001f600` in Python
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        bodies = ["u" + _hex(high, 4) + r"\\+u" + _hex(low, 4), "U" + _hex(code, 8)]
    if code < 0x100:
        bodies.append("x" + _hex(code))
    if code >= 0x80:  # a bytes repr: b'\xc3\xb6'
        bodies.append("x" + r"\\+x".join(_hex(b) for b in char.encode()))
    if char in _SHORT_ESCAPES:
        bodies.append(_SHORT_ESCAPES[char])
    if char in "\"'\\/":  # `\"`, `\'`, `\\`, `\/`, with the escaped character spelled any way
        bodies.append(_unit(char, binary=False, backslash=False))
    return bodies


def _raw(char: str, binary: bool) -> list[Form]:
    """The character itself, in either case (host names are lowered), and what form
    encoding and decoding make of a space and a `+`."""
    variants = dict.fromkeys(
        v for v in (char, char.lower(), char.upper(), char.swapcase()) if len(v) == 1
    )
    forms = [_literal(v, binary) for v in variants]
    code = ord(char)
    if binary and 0x80 <= code < 0x100:
        forms.append((f"\\x{code:02x}", ""))
    if char == " ":
        forms.append((r"\+", ""))  # form encoding
    elif char == "+":
        forms.append((re.escape(" "), ""))  # form decoding turned it into a space
    return forms


def _plain(char: str, binary: bool) -> list[Form]:
    """The character itself and its percent-encodings and HTML references."""
    forms = _raw(char, binary) + _percent(char)
    forms += [(head, f"(?:{tail})(?:{'|'.join(_entities(char))})") for head, tail in _AMPERSAND]
    return forms


def _forms(char: str, binary: bool) -> list[Form]:
    """Every way one character of a secret may be written, escapes first: at the end of
    a secret the first alternative that matches wins, and `%` must not beat `%25`."""
    bodies = "|".join(_escapes(char))
    forms = [
        *_plain(char, binary),
        *((head, f"(?:{tail})(?:{bodies})") for head, tail in _BACKSLASH),
    ]
    return sorted(forms, key=lambda form: not form[1])


# The introducers of _AMPERSAND and _BACKSLASH as one regex each, for _unit.
_AMPERSAND_ANY = r"(?:&|\\+[xX]26|\\+u0026|%(?:25)*26)(?:amp;)*"
_BACKSLASH_ANY = r"(?:\\|%(?:25)*5[cC])+"


def _unit(char: str, binary: bool, backslash: bool = True) -> str:
    """_forms as one compact group, for every character but a secret's first (whose
    branches must start with a literal): escapes first, as in _forms."""
    escapes = [
        *(head + tail for head, tail in _percent(char)),
        f"{_AMPERSAND_ANY}(?:{'|'.join(_entities(char))})",
    ]
    if backslash:
        escapes.append(f"{_BACKSLASH_ANY}(?:{'|'.join(_escapes(char))})")
    return f"(?:{'|'.join(escapes + [head + tail for head, tail in _raw(char, binary)])})"


def _base64_forms(char: str) -> list[Form]:
    if char == "/":  # `\/` from JSON encoders (PHP), `%2F` in a query string
        return [("/", ""), ("\\\\", "/"), ("%", _PCT[1] + "2[fF]")]
    if char == "+":
        return [(r"\+", ""), ("%", _PCT[1] + "2[bB]"), (re.escape(" "), "")]
    return [(re.escape(char), "")]


def _base64_cores(secret: str) -> set[str]:
    """The base64 characters that depend on the secret alone, at each of the three
    byte alignments it can have inside a longer encoded string, standard and URL-safe."""
    data = secret.encode()
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data + b"\0\0").decode()
        first = -(-8 * offset // 6)  # characters made of the secret's bits only
        last = (8 * (offset + len(data))) // 6
        core = encoded[first:last]
        if len(core) >= _MIN_BASE64_CORE:
            cores |= {core, core.replace("+", "-").replace("/", "_")}
    return cores


def _variants(secret: str) -> set[str]:
    """The secret and the forms software normalises it to before encoding it."""
    found = {secret, unicodedata.normalize("NFC", secret), unicodedata.normalize("NFD", secret)}
    with contextlib.suppress(UnicodeError):  # a host name label: Chromium writes punycode
        found.add(secret.encode("idna").decode())
    return found


def _branches(first: list[Form], units: list[str]) -> list[str]:
    """Regex branches matching the first character's forms and then the other units,
    grouped by a literal first character."""
    rest = "".join(units)
    by_head: dict[str, list[str]] = defaultdict(list)
    for head, tail in first:
        by_head[head].append(tail)
    return [
        head + (f"(?:{'|'.join(tails)})" if tails != [""] else "") + rest
        for head, tails in by_head.items()
    ]


def _secret_branches(secret: str, binary: bool) -> list[str]:
    branches = []
    for variant in sorted(_variants(secret)):
        branches += _branches(_forms(variant[0], binary), [_unit(c, binary) for c in variant[1:]])
    if not _whole_values_only(secret):
        for core in sorted(_base64_cores(secret)):
            units = [f"(?:{_joined(_base64_forms(c))})" for c in core[1:]]
            branches += _branches(_base64_forms(core[0]), units)
    return branches


# A whole value: after a quote, `=` or `>`; before a closing quote (not a key), `&`, `<`...
_VALUE_START = "[\"'=>;]"
_VALUE_END = r"(?=\\*[\"'](?!\s*:)|[&#;<\s,)\]}%+]|$)"


class _Patterns:
    """The compiled patterns for one mode (str or bytes)."""

    def __init__(self, secrets: tuple[str, ...], binary: bool) -> None:
        self.secrets = secrets
        # Longest first, so that a secret containing another is masked whole.
        ordered = sorted(secrets, key=len, reverse=True)
        long_branches = [
            b for s in ordered if not _whole_values_only(s) for b in _secret_branches(s, binary)
        ]
        short_branches = [
            b for s in ordered if _whole_values_only(s) for b in _secret_branches(s, binary)
        ]
        self.free = self._compile("|".join(long_branches), binary) if long_branches else None
        self.exact = self.whole = None
        if short_branches:
            alternatives = "|".join(short_branches)
            self.exact = self._compile(f"(?:{alternatives})", binary)
            self.whole = self._compile(f"{_VALUE_START}(?:{alternatives}){_VALUE_END}", binary)

    @staticmethod
    def _compile(pattern: str, binary: bool) -> "re.Pattern[Any]":
        return re.compile(pattern.encode("ascii") if binary else pattern)


class Redactor:
    """Replaces every known secret, in every spelling, with MASK."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: tuple[str, ...] = ()
        self._text: _Patterns | None = None
        self._bytes: _Patterns | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these too, in place: one instance is shared by logs, runner and API, so a
        reloaded scenario file's new secrets are masked everywhere at once.

        The patterns are compiled when first needed (~30 ms of CPU per secret): a
        redactor kept for error messages that never come, as a `prober run` that goes
        well has, costs nothing; only the worker scrubs bytes.
        """
        self.secrets = tuple(sorted({*self.secrets, *(s for s in secrets if s)}))

    def _patterns(self, binary: bool) -> _Patterns:
        """The compiled patterns of the current secrets. A thread that compiled for an
        older set and stored them late is caught by the identity check and redone."""
        secrets, compiled = self.secrets, self._bytes if binary else self._text
        if compiled is None or compiled.secrets is not secrets:
            compiled = _Patterns(secrets, binary)
            if binary:
                self._bytes = compiled
            else:
                self._text = compiled
        return compiled

    @property
    def short(self) -> tuple[str, ...]:
        """The secrets masked as whole values only."""
        return tuple(s for s in self.secrets if _whole_values_only(s))

    def __call__(self, text: str) -> str:
        if not text:
            return text
        masked: str = _mask(self._patterns(binary=False), text, MASK)
        return masked

    def bytes(self, data: bytes) -> bytes:
        """Scrub raw bytes (files written by the browser) without decoding them as a whole."""
        masked: bytes = _mask(self._patterns(binary=True), data, MASK.encode())
        return masked

    def value(self, value: T) -> T:
        """Every string inside a JSON-like value masked; keys, numbers and booleans kept.

        Masking values before serialising keeps the structure intact: a mask applied to
        the serialised text could land inside a number or a key.
        """
        if isinstance(value, str):
            return self(value)  # type: ignore[return-value]
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}  # type: ignore[return-value]
        if isinstance(value, list | tuple):
            return type(value)(self.value(item) for item in value)
        return value


def _mask(patterns: _Patterns, data: Any, mask: Any) -> Any:
    if patterns.exact is not None and patterns.exact.fullmatch(data):
        return mask
    if patterns.free is not None:
        data = patterns.free.sub(mask, data)
    if patterns.whole is not None:
        keep_start: Callable[[re.Match[Any]], Any] = lambda match: match[0][:1] + mask  # noqa: E731
        data = patterns.whole.sub(keep_start, data)
    return data
