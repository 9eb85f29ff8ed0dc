"""The webhook's TLS credentials: a throw-away CA per process and the serving
certificate it signs, and the caBundle that makes the API server trust them.

Each replica makes its own CA at start-up and keeps its private key in
memory only (no Secret to read or guard). The caBundle of kvip's
ValidatingWebhookConfiguration therefore lists the CA of every live replica:
each adds its own and drops the expired ones (`merged_bundle`). Credentials
are renewed at two thirds of their lifetime (`renewal_due`).
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: How long a CA and its serving certificate are valid.
DEFAULT_LIFETIME = timedelta(days=30)
#: Renewed once this fraction of the lifetime has passed.
RENEW_AT = 2 / 3
#: Certificates made at most this long ago are taken as valid from now: a
#: node's clock may be a little behind the API server's.
CLOCK_SKEW = timedelta(minutes=5)
#: At most this many CAs in a caBundle (a crash-looping pod adds one per start,
#: until they expire); the newest are kept.
MAX_BUNDLE = 32

_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True, slots=True)
class Credentials:
    """PEM texts of a CA, the serving certificate it signed, and that
    certificate's key, and when they stop being valid."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    not_before: datetime
    not_after: datetime


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alternative_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def issue(
    hosts: Sequence[str], *, now: datetime, lifetime: timedelta = DEFAULT_LIFETIME
) -> Credentials:
    """A new CA and a serving certificate for `hosts` (DNS names or IP
    addresses; the first is also the subject), valid for `lifetime`."""
    if not hosts:
        raise ValueError("a serving certificate needs at least one host name")
    not_before, not_after = now - CLOCK_SKEW, now + lifetime
    # EC P-256: a key in milliseconds, and what every Kubernetes accepts.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"kvip-webhook-ca@{int(now.timestamp())}")
    ca = (
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
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_alternative_names(hosts)), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Credentials(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        not_before=not_before,
        not_after=not_after,
    )


def renewal_due(credentials: Credentials) -> datetime:
    """When `credentials` are to be replaced: two thirds into their lifetime."""
    lifetime = credentials.not_after - credentials.not_before
    return credentials.not_before + lifetime * RENEW_AT


def server_context(credentials: Credentials) -> ssl.SSLContext:
    """A TLS server context for `credentials`. The ssl module loads keys from
    files only: they pass through a private temporary directory, removed at once."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="kvip-webhook-") as directory:
        cert, key = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
            file.write(credentials.key_pem)
        with open(cert, "wb") as file:
            file.write(credentials.cert_pem)
        context.load_cert_chain(cert, key)
    return context


def bundle_certificates(bundle: bytes) -> list[x509.Certificate]:
    """The certificates of a PEM bundle; text that is not one is skipped."""
    found = []
    for part in bundle.split(_PEM_BEGIN)[1:]:
        try:
            found.append(x509.load_pem_x509_certificate(_PEM_BEGIN + part))
        except ValueError:
            continue
    return found


def merged_bundle(
    bundle: bytes, *, add: bytes | None = None, drop: Iterable[bytes] = (), now: datetime
) -> bytes:
    """`bundle` with the CA `add` in it, the CAs in `drop` and the expired ones
    out, and at most MAX_BUNDLE CAs: `add` and the newest others, oldest first."""
    dropped = {x509.load_pem_x509_certificate(pem) for pem in drop}
    kept = [
        cert
        for cert in bundle_certificates(bundle)
        if cert.not_valid_after_utc > now and cert not in dropped
    ]
    kept.sort(key=lambda cert: cert.not_valid_before_utc)
    if add is not None:
        # The caller's own CA stays, however old: the caller is alive.
        new = x509.load_pem_x509_certificate(add)
        kept = [cert for cert in kept if cert != new][-(MAX_BUNDLE - 1) :]
        kept.append(new)
        kept.sort(key=lambda cert: cert.not_valid_before_utc)
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in kept[-MAX_BUNDLE:])


def utc_now() -> datetime:
    return datetime.now(UTC)
