"""RFC 6238 written from the RFC with hmac: the yardstick our pyotp-based codes are
checked against, and what the test IdP verifies with."""

import base64
import hashlib
import hmac
import struct

DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def reference_code(
    key: bytes, at: float, digits: int = 6, period: int = 30, algorithm: str = "SHA1"
) -> str:
    """RFC 6238 section 4 over RFC 4226 section 5.3 (dynamic truncation)."""
    counter = int(at // period)
    mac = hmac.new(key, struct.pack(">Q", counter), DIGESTS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def key_of(seed: str) -> bytes:
    seed = seed.replace(" ", "").upper()
    return base64.b32decode(seed + "=" * (-len(seed) % 8))
