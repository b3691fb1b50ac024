"""Reading artifacts back in tests: a minimal PNG decoder and a search for secret spellings.

The decoder handles what Chromium writes (8-bit RGB/RGBA, not interlaced); a real image
library would be one more dependency for two assertions.
"""

import base64
import contextlib
import html
import json
import struct
import zipfile
import zlib
from pathlib import Path
from urllib.parse import quote, quote_plus

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the signature."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def png_pixels(data: bytes) -> list[bytes]:
    """Rows of RGB(A) pixels; asserts on anything but 8-bit RGB/RGBA without interlace."""
    width, height = png_size(data)
    depth, color, _, _, interlace = data[24:29]
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    channels = 3 if color == 2 else 4
    compressed, offset = b"", 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == b"IDAT":
            compressed += data[offset + 8 : offset + 8 + length]
        offset += 12 + length
    raw = zlib.decompress(compressed)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            up_left = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                line[x] = (line[x] + predictor) & 0xFF
        rows.append(bytes(b for i in range(0, stride, channels) for b in line[i : i + 3]))
        previous = line
    return rows


def count_color(data: bytes, rgb: tuple[int, int, int]) -> int:
    needle = bytes(rgb)
    return sum(
        1 for row in png_pixels(data) for i in range(0, len(row), 3) if row[i : i + 3] == needle
    )


# WHATWG URL percent-encode sets (url.spec.whatwg.org), each a superset of the last.
_FRAGMENT = frozenset(' "<>`')
_QUERY = frozenset(' "#<>')
_SPECIAL_QUERY = _QUERY | {"'"}
_PATH = _QUERY | frozenset("?^`{}")
_USERINFO = _PATH | frozenset("/:;=@[\\]|")
_COMPONENT = _USERINFO | frozenset("$%&+,")
_FORM = _COMPONENT | frozenset("!'()~")
_URI_COMPONENT_SAFE = frozenset("-_.!~*'()")  # encodeURIComponent leaves these


def whatwg(text: str, encode: frozenset[str], space_as_plus: bool = False) -> str:
    """Percent-encode as a browser does: UTF-8, upper-case hex, C0 controls and non-ASCII."""
    out = []
    for char in text:
        if char == " " and space_as_plus:
            out.append("+")
        elif char in encode or ord(char) < 0x20 or ord(char) > 0x7E:
            out.append("".join(f"%{b:02X}" for b in char.encode()))
        else:
            out.append(char)
    return "".join(out)


def _entities(text: str, table: dict[str, str]) -> str:
    return "".join(table.get(char, char) for char in text)


def base64_cores(data: bytes) -> set[str]:
    """The base64 text of `data` inside any longer base64 string, at each alignment.

    Found by encoding it between two different fillers and keeping what both agree on,
    so it does not share the Redactor's arithmetic.
    """
    cores = set()
    for offset in range(3):
        first = base64.b64encode(b"\0" * offset + data + b"\0\0").decode()
        second = base64.b64encode(b"\xff" * offset + data + b"\xff\xff").decode()
        same = "".join(a if a == b else "\n" for a, b in zip(first, second, strict=True))
        core = max(same.split("\n"), key=len)
        if len(core) >= 6:  # shorter ones occur by chance in any image
            cores |= {core, core.replace("+", "-").replace("/", "_")}
    return cores


def text_spellings(secret: str) -> set[str]:
    """How browsers, servers and libraries write a value; independent of the Redactor."""
    go_json = (
        json.dumps(secret, ensure_ascii=False)[1:-1]
        .replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
    )
    as_json = json.dumps(secret, ensure_ascii=False)[1:-1]
    found = {
        secret,
        secret.lower(),  # a host name
        secret.replace("+", " "),  # form decoding
        quote(secret, safe=""),
        quote(secret, safe="").lower(),
        quote(secret),
        quote_plus(secret),
        quote(quote(secret, safe=""), safe=""),  # double percent-encoding
        quote(secret, safe="".join(_URI_COMPONENT_SAFE)),  # encodeURIComponent
        *(whatwg(secret, s) for s in (_FRAGMENT, _QUERY, _SPECIAL_QUERY, _PATH, _USERINFO)),
        whatwg(secret, _COMPONENT),
        whatwg(secret, _FORM, space_as_plus=True),
        json.dumps(secret)[1:-1],
        as_json,
        go_json,
        json.dumps(as_json, ensure_ascii=False)[1:-1],  # a JSON string inside a JSON string
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
        html.escape(secret),  # &quot; &#x27;
        _entities(secret, {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;"}),
        _entities(secret, {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}),
        _entities(secret, {"&": "&amp;", "<": "&lt;", ">": "&gt;"}),  # DOM text node
        _entities(secret, {"&": "&amp;", '"': "&quot;", "\xa0": "&nbsp;"}),  # DOM attribute
    }
    return {text for text in found if text}


def spellings(secrets: tuple[str, ...]) -> set[bytes]:
    """Text spellings in UTF-8, base64 at every alignment (HTTP Basic included), plus
    encodings the Redactor does not mask (UTF-16, Latin-1): a search for them shows
    they do not occur, rather than assuming."""
    found: set[bytes] = set()
    for secret in secrets:
        found |= {text.encode() for text in text_spellings(secret)}
        found |= {core.encode() for core in base64_cores(secret.encode())}
        found.add(secret.encode("utf-16-le"))
        with contextlib.suppress(UnicodeEncodeError):
            found.add(secret.encode("latin-1"))
    return found


def blobs(path: Path) -> dict[str, bytes]:
    """A file's bytes, or every member of a zip (a trace), by `file[:member]` name."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return {f"{path.name}:{n}": archive.read(n) for n in archive.namelist()}
    return {path.name: path.read_bytes()}


def find_spellings(named: dict[str, bytes], secrets: tuple[str, ...]) -> list[str]:
    """`name: spelling` for every spelling of every secret found in the named blobs."""
    needles = spellings(secrets)
    return [
        f"{name}: {needle!r}"
        for name, blob in named.items()
        for needle in needles
        if needle in blob
    ]


def leaks(path: Path, secrets: tuple[str, ...]) -> list[str]:
    """`file[:member]: spelling` for every secret spelling found in a file or zip member."""
    return find_spellings(blobs(path), secrets)


def tree_leaks(directory: Path, secrets: tuple[str, ...]) -> list[str]:
    """Every spelling found in any file below `directory`, trace zips unpacked."""
    named: dict[str, bytes] = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        named |= {f"{path.relative_to(directory).parent}/{k}": v for k, v in blobs(path).items()}
    return find_spellings(named, secrets)
