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


def text_spellings(secret: str) -> set[str]:
    """How a value is written in text; listed here independently of the Redactor."""
    as_json = json.dumps(secret, ensure_ascii=False)[1:-1]
    return {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        quote_plus(secret, safe="*").replace("~", "%7E"),
        quote(secret, safe="!~*'()"),
        json.dumps(secret)[1:-1],
        as_json,
        json.dumps(as_json, ensure_ascii=False)[1:-1],
        html.escape(secret),
    }


def spellings(secrets: tuple[str, ...]) -> set[bytes]:
    """Text spellings in UTF-8, plus encodings the Redactor does not mask (base64,
    UTF-16, Latin-1): a search for them shows they do not occur, rather than assuming."""
    found: set[bytes] = set()
    for secret in secrets:
        found |= {text.encode() for text in text_spellings(secret)}
        found |= {secret.encode("utf-16-le"), base64.b64encode(secret.encode())}
        with contextlib.suppress(UnicodeEncodeError):
            found.add(secret.encode("latin-1"))
    return found


def leaks(path: Path, secrets: tuple[str, ...]) -> list[str]:
    """`file[:member]: spelling` for every secret spelling found in a file or zip member."""
    blobs = {path.name: path.read_bytes()}
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            blobs = {f"{path.name}:{n}": archive.read(n) for n in archive.namelist()}
    return [
        f"{name}: {spelling!r}"
        for name, blob in blobs.items()
        for spelling in spellings(secrets)
        if spelling in blob
    ]
