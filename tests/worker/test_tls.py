"""HTTPS against a private CA made in the test: trusted only with PROBER_CA_FILE.

The CA and the server certificate are generated here (`cryptography`), so the
certificate's notAfter is known to the second and nothing depends on the date.
"""

import datetime
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import CollectorRegistry

from prober.contracts.cabundle import CABundleError, read_ca_bundle
from prober.contracts.config import load_config
from prober.contracts.result import Outcome, Reason
from prober.demo.site import serve_on_loopback
from prober.record.metrics import ProberMetrics
from prober.settings import (
    DEFAULT_PAGE_TIMING_BUCKETS,
    DEFAULT_SCENARIO_BUCKETS,
    DEFAULT_STEP_BUCKETS,
)
from prober.supervise.runner import WorkerRunner
from prober.worker.certificates import certificate_host

MakeRunner = Callable[..., WorkerRunner]
NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
NOT_AFTER = NOW + datetime.timedelta(days=20)


@dataclass
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki(directory: Path) -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("prober test CA"))
        .issuer_name(_name("prober test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


@pytest.fixture
async def https_site(pki: Pki) -> AsyncIterator[str]:
    async def home(request: web.Request) -> web.Response:
        return web.Response(text="<h1>Internal app</h1>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", home)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    async with serve_on_loopback(app, ssl_context=context) as port:
        yield f"https://localhost:{port}"


SCENARIO = """
scenarios:
  - name: internal
    interval: 60s
    timeout: 20s
    steps:
      - name: app_loaded
        actions:
          - goto: "${public:INTERNAL_URL}/"
          - wait_for: "text=Internal app"
"""


async def test_a_private_ca_is_trusted_only_with_the_ca_file(
    write_config: Callable[[str], Path],
    make_runner: MakeRunner,
    https_site: str,
    pki: Pki,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTERNAL_URL", https_site)
    config = load_config(write_config(SCENARIO))

    untrusted = await make_runner(config).run(config.scenario("internal"))
    assert untrusted.result is Outcome.FAILURE
    assert untrusted.reason is Reason.TLS, untrusted.error
    assert untrusted.error and "ERR_CERT_AUTHORITY_INVALID" in untrusted.error
    assert untrusted.certificates == ()

    trusted = await make_runner(config, ca_file=str(pki.ca_file)).run(config.scenario("internal"))
    assert trusted.result is Outcome.SUCCESS, trusted.error
    host = "localhost:" + https_site.rsplit(":", 1)[1]
    (certificate,) = trusted.certificates
    assert certificate.host == host
    assert certificate.expires_at == NOT_AFTER.timestamp()

    registry = CollectorRegistry()
    metrics = ProberMetrics(
        registry, DEFAULT_SCENARIO_BUCKETS, DEFAULT_STEP_BUCKETS, DEFAULT_PAGE_TIMING_BUCKETS
    )
    metrics.record(trusted, ended_at=0.0)
    labels = {"scenario": "internal", "host": host}
    expiry = "prober_tls_certificate_expiry_timestamp_seconds"
    assert registry.get_sample_value(expiry, labels) == NOT_AFTER.timestamp()


def test_the_ca_file_must_hold_ca_certificates(pki: Pki, tmp_path: Path) -> None:
    assert len(read_ca_bundle(pki.ca_file)) == 1
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(pki.ca_file.read_text() * 2)
    assert len(read_ca_bundle(bundle)) == 2
    cases = {
        tmp_path / "missing.pem": "cannot read",
        pki.key_file: "no PEM certificate",
        pki.cert_file: "not a CA certificate",
    }
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    cases[broken] = "certificate 1 is not a valid PEM certificate"
    for path, message in cases.items():
        with pytest.raises(CABundleError, match=message) as caught:
            read_ca_bundle(path)
        assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://IdP.Example.com/login", "idp.example.com"),
        ("https://idp.example.com:443/", "idp.example.com"),
        ("https://idp.example.com:8443/x?y", "idp.example.com:8443"),
        ("https://user:pw@idp.example.com./", "idp.example.com"),
        ("https://[::1]:8443/", "[::1]:8443"),
        ("http://idp.example.com/", None),
        ("https://idp.example.com:99999/", None),
    ],
)
def test_certificate_hosts_are_normalised(url: str, host: str | None) -> None:
    assert certificate_host(url) == host
