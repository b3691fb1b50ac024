"""prober.scenario.totp against RFC 6238's own test vectors and an independent HMAC."""

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

from prober.contracts.secrets import Redactor
from prober.scenario import totp
from prober.supervise import processes
from tests.conftest import leftover_processes
from tests.totp_reference import key_of, reference_code

# RFC 6238 appendix B: the seeds are ASCII "1234567890" repeated to the digest's size.
RFC_SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
RFC_VECTORS = [
    (59, "SHA1", "94287082"),
    (59, "SHA256", "46119246"),
    (59, "SHA512", "90693936"),
    (1111111109, "SHA1", "07081804"),
    (1234567890, "SHA256", "91819424"),
    (20000000000, "SHA512", "47863826"),
]
SEED = "JBSWY3DPEHPK3PXP"


@pytest.mark.parametrize(("at", "algorithm", "expected"), RFC_VECTORS)
def test_codes_match_the_rfc_vectors_and_the_reference(
    at: int, algorithm: str, expected: str
) -> None:
    seed = base64.b32encode(RFC_SEEDS[algorithm]).decode()
    code = totp.totp(seed, digits=8, algorithm=algorithm, at=at)  # type: ignore[arg-type]
    assert code == expected == reference_code(RFC_SEEDS[algorithm], at, 8, 30, algorithm)


def test_seed_spelling_does_not_matter_and_every_code_is_masked() -> None:
    redact = Redactor()
    totp.mask_with(redact.add)
    try:
        code = totp.totp("jbsw y3dp ehpk 3pxp", at=1000.0)
    finally:
        totp.mask_with(lambda secrets: None)
    assert code == reference_code(key_of(SEED), 1000.0)
    assert redact("seed JBSWY3DPEHPK3PXP") == "seed ********"
    # Where a code is a value it is masked; inside numbers (an event's duration, a
    # trace's timestamps) it is left alone, so the JSON stays intact.
    event = f'{{"otp":"{code}","form":"otp={code}&go=1","d":0.{code}1,"t":1{code}.5}}'
    masked = redact(event)
    assert masked == (
        f'{{"otp":"********","form":"otp=********&go=1","d":0.{code}1,"t":1{code}.5}}'
    )
    assert json.loads(masked)["d"] == float(f"0.{code}1")


def test_a_bad_seed_raises_without_quoting_it() -> None:
    with pytest.raises(ValueError) as caught:
        totp.totp("not-a-seed-1890")
    assert "base32" in str(caught.value) and "not-a-seed" not in str(caught.value)


@pytest.fixture
async def page(browser_path: Path) -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(browser_path))
        page = await browser.new_page()
        await page.set_content('<input id="otp">')
        yield page
        await browser.close()
    # pytest is a subreaper (tests/conftest.py): Chromium's helpers re-parent to it.
    for _ in range(50):
        processes.reap_orphans(exclude=set())
        if not leftover_processes():
            break
        await asyncio.sleep(0.1)


async def test_fill_totp_never_fills_a_code_about_to_expire(page: Page) -> None:
    """A 6 s period with a 3 s margin: whenever it is called, the code it fills is the
    current one and has at least the margin left (less the time the fill took)."""
    for _ in range(3):
        await totp.fill_totp(page, "#otp", SEED, period=6, margin=3.0)
        now = time.time()
        assert totp.seconds_left(6, now) > 2.0
        assert await page.input_value("#otp") == reference_code(key_of(SEED), now, period=6)
        await page.wait_for_timeout(1300)  # land in a different part of the window
