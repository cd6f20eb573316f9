"""Throwaway TLS material for test servers: a tiny CA and a leaf for localhost/127.0.0.1/::1.

A real CA + leaf (rather than one self-signed leaf) keeps strict verifiers happy: Python 3.13's
default context sets VERIFY_X509_STRICT, and mitmproxy's ``ssl_verify_upstream_trusted_ca`` wants
a CA file. EC P-256 keys keep generation to a few milliseconds.
"""

from __future__ import annotations

import atexit
import datetime
import ipaddress
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TestCerts:
    """Paths to PEM files. ``ca_cert`` is what a client passes as ``verify=``/cafile."""

    __test__ = False  # not a pytest test class

    directory: Path
    ca_cert: Path
    cert: Path  # leaf certificate (server)
    key: Path  # leaf private key (unencrypted PKCS#8)
    chain: Path  # leaf + CA, for servers that want the full chain in one file


def generate_test_certs(directory: Path | str) -> TestCerts:
    """Write a fresh CA and a localhost leaf certificate into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    not_before = now - datetime.timedelta(days=1)
    not_after = now + datetime.timedelta(days=30)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Passageway Test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    ca_pem = ca_cert.public_bytes(pem)
    leaf_pem = leaf_cert.public_bytes(pem)
    paths = TestCerts(
        directory=directory,
        ca_cert=directory / "ca.pem",
        cert=directory / "server.pem",
        key=directory / "server-key.pem",
        chain=directory / "server-chain.pem",
    )
    paths.ca_cert.write_bytes(ca_pem)
    paths.cert.write_bytes(leaf_pem)
    paths.chain.write_bytes(leaf_pem + ca_pem)
    paths.key.write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths.key.chmod(0o600)
    return paths


_lock = threading.Lock()
_shared: TestCerts | None = None


def shared_test_certs() -> TestCerts:
    """One set of certs per test process (generated on first use, removed at exit)."""
    global _shared
    with _lock:
        if _shared is None:
            directory = Path(tempfile.mkdtemp(prefix="passageway-test-certs-"))
            atexit.register(shutil.rmtree, directory, ignore_errors=True)
            _shared = generate_test_certs(directory)
        return _shared
