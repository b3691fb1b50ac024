"""Second factor for script authors: RFC 6238 codes from a base32 seed, masked like secrets.

    from prober.scenario import totp

    async def run(page, step, params):
        async with step("mfa_accepted", component="idp"):
            await totp.fill_totp(page, "#otp", params["mfa_seed"])
            await page.get_by_text("Welcome").wait_for()

The declarative `fill_totp` action is this same function. Inside a worker, every code
(and the seed) is added to the run's redactor before it reaches the page, so neither
appears in events, console logs or the trace; screenshots mask every input already.
Codes come from `pyotp`, a kept library, rather than our own HMAC arithmetic.
"""

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any

import pyotp
from playwright.async_api import Page

from prober.contracts.totp import Algorithm, normalize_seed, seed_problem

# A code with less than this left is not submitted: typing, the POST and the IdP's own
# clock skew check take a second or two, and a code that dies in flight fails the run.
DEFAULT_MARGIN_SECONDS = 3.0
_DIGESTS: dict[str, Callable[..., Any]] = {
    "SHA1": hashlib.sha1,
    "SHA256": hashlib.sha256,
    "SHA512": hashlib.sha512,
}


class _EnrolledTOTP(pyotp.TOTP):
    """pyotp refuses seeds under 112 bits (NIST's advice for issuing them); the seed
    here was issued by the IdP, and 80-bit seeds (Google Authenticator's) are common:
    a probe must sign in with whatever the IdP enrolled."""

    min_secret_length_bits = 8


def _no_redactor(secrets: Iterable[str]) -> None:
    """Outside a worker (a unit test, a REPL) there is nothing to mask."""


_mask: Callable[[Iterable[str]], None] = _no_redactor


def mask_with(add: Callable[[Iterable[str]], None]) -> None:
    """Called by the worker with its redactor's `add`: codes are secrets from birth."""
    global _mask
    _mask = add


def totp(
    secret: str,
    *,
    digits: int = 6,
    period: int = 30,
    algorithm: Algorithm = "SHA1",
    at: float | None = None,
) -> str:
    """The code for `at` (default: now). ValueError, naming no secret, for a bad seed."""
    problem = seed_problem(secret)
    if problem:
        raise ValueError(problem)
    seed = normalize_seed(secret)
    _mask((secret, seed))
    generator = _EnrolledTOTP(seed, digits=digits, interval=period, digest=_DIGESTS[algorithm])
    code = generator.at(time.time() if at is None else at)
    _mask((code,))
    return code


def seconds_left(period: int, now: float | None = None) -> float:
    """How long the current code stays valid."""
    now = time.time() if now is None else now
    return period - (now % period)


async def fill_totp(
    page: Page,
    selector: str,
    secret: str,
    *,
    digits: int = 6,
    period: int = 30,
    algorithm: Algorithm = "SHA1",
    margin: float = DEFAULT_MARGIN_SECONDS,
) -> None:
    """Fill the current code into `selector`, first waiting out a window about to end.

    The wait (at most `margin` seconds) is spent inside the calling step and counts in
    its duration: the user would wait for the next code as well.
    """
    left = seconds_left(period)
    if left < margin:
        await asyncio.sleep(left + 0.05)
    code = totp(secret, digits=digits, period=period, algorithm=algorithm)
    await page.locator(selector).fill(code)
