"""TOTP seeds (RFC 6238) as configuration: what a valid seed is, without generating codes.

Shared by the scenario schema (an invalid seed is a config error at load, not a failed
run at 3am) and the script helper (prober.scenario.totp). Nothing here may echo a seed:
it is a credential, and error messages end up in logs.
"""

import base64
import binascii
from typing import Literal

Algorithm = Literal["SHA1", "SHA256", "SHA512"]


def normalize_seed(seed: str) -> str:
    """The base32 seed as authenticator apps accept it: spaces and case do not matter."""
    return "".join(seed.split()).upper().rstrip("=")


def seed_problem(seed: str) -> str | None:
    """Why `seed` cannot be a TOTP seed, in words that do not quote it; None if it can."""
    normalized = normalize_seed(seed)
    if not normalized:
        return "the TOTP secret is empty"
    padded = normalized + "=" * (-len(normalized) % 8)
    try:
        base64.b32decode(padded)
    except (binascii.Error, ValueError):
        return (
            f"the TOTP secret is not base32 (A-Z and 2-7, {len(normalized)} characters "
            "given); use the seed of the authenticator enrolment, not a code or a URL"
        )
    return None
