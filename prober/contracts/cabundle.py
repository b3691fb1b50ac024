"""PROBER_CA_FILE: the private CAs Chromium must trust, read and checked once.

Checked when the settings load (every verb), so a wrong mount fails `prober check`
and the pod's start with a message naming the file, not every run with a TLS error.
The worker turns the same bundle into the browser's NSS database
(prober.worker.trust). Parsed with the standard library's `ssl`, which is what
decides whether a block is a certificate at all.
"""

import re
import ssl
from pathlib import Path

_PEM_BLOCK = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)


class CABundleError(ValueError):
    """The CA file cannot be used; the message names the file and what is wrong."""


def read_ca_bundle(path: Path) -> list[str]:
    """The PEM certificates in `path`, each checked; CABundleError if there are none."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a text file"
        raise CABundleError(f"{path}: cannot read the CA file: {reason}") from None
    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        raise CABundleError(f"{path}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it")
    for number, block in enumerate(blocks, 1):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_verify_locations(cadata=block)
        except ssl.SSLError:
            raise CABundleError(
                f"{path}: certificate {number} is not a valid PEM certificate"
            ) from None
        if not context.cert_store_stats()["x509_ca"]:
            raise CABundleError(
                f"{path}: certificate {number} is not a CA certificate (basicConstraints CA:TRUE)"
            )
    return blocks
