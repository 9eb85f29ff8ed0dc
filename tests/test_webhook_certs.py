"""The webhook's credentials: a CA and a serving certificate that a TLS client
trusting only that CA accepts for the names given, renewed at two thirds of
their life, and a caBundle that keeps every live replica's CA."""

from __future__ import annotations

import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta

from cryptography import x509

from kvip.app._certs import (
    MAX_BUNDLE,
    bundle_certificates,
    issue,
    merged_bundle,
    renewal_due,
    server_context,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_client_trusting_the_ca_accepts_the_server() -> None:
    credentials = issue(("127.0.0.1", "kvip-webhook.kvip-system.svc"), now=datetime.now(UTC))
    server = server_context(credentials)
    trusting = ssl.create_default_context(cadata=credentials.ca_pem.decode())
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def accept() -> None:
            connection, _ = listener.accept()
            with server.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"ok")

        thread = threading.Thread(target=accept)
        thread.start()
        with (
            socket.create_connection(listener.getsockname()) as raw,
            trusting.wrap_socket(raw, server_hostname="kvip-webhook.kvip-system.svc") as tls,
        ):
            assert tls.recv(2) == b"ok"
        thread.join()
    sans = x509.load_pem_x509_certificate(credentials.cert_pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert sans.value.get_values_for_type(x509.DNSName) == ["kvip-webhook.kvip-system.svc"]


def test_renewal_is_due_two_thirds_into_the_lifetime() -> None:
    credentials = issue(("127.0.0.1",), now=NOW, lifetime=timedelta(days=30))
    lifetime = credentials.not_after - credentials.not_before
    assert renewal_due(credentials) == credentials.not_before + lifetime * 2 / 3
    assert NOW + timedelta(days=19) < renewal_due(credentials) < NOW + timedelta(days=20)


def test_the_bundle_keeps_live_cas_and_drops_expired_and_replaced_ones() -> None:
    mine = issue(("a",), now=NOW, lifetime=timedelta(days=30))
    other = issue(("b",), now=NOW + timedelta(days=1), lifetime=timedelta(days=30))
    expired = issue(("c",), now=NOW - timedelta(days=40), lifetime=timedelta(days=30))
    bundle = merged_bundle(b"", add=expired.ca_pem, now=NOW - timedelta(days=20))
    bundle = merged_bundle(bundle + other.ca_pem + b"garbage", add=mine.ca_pem, now=NOW)
    assert bundle == mine.ca_pem + other.ca_pem  # oldest first, the expired one gone
    assert merged_bundle(bundle, add=mine.ca_pem, now=NOW) == bundle  # once only
    renewed = issue(("a",), now=NOW + timedelta(days=20), lifetime=timedelta(days=30))
    bundle = merged_bundle(bundle, add=renewed.ca_pem, drop=[mine.ca_pem], now=NOW)
    assert bundle == other.ca_pem + renewed.ca_pem


def test_the_bundle_is_capped_to_the_newest() -> None:
    cas = [issue(("a",), now=NOW + timedelta(minutes=i)).ca_pem for i in range(MAX_BUNDLE + 2)]
    bundle = b""
    for ca in cas:
        bundle = merged_bundle(bundle, add=ca, now=NOW)
    assert len(bundle_certificates(bundle)) == MAX_BUNDLE
    assert bundle == b"".join(cas[2:])


def test_a_live_replicas_ca_survives_the_cap() -> None:
    """Many newer CAs (a crash-looping pod) never push out the CA that a live
    replica adds back: its own is always in the bundle after its update."""
    oldest = issue(("a",), now=NOW - timedelta(days=1)).ca_pem
    bundle = merged_bundle(b"", add=oldest, now=NOW)
    for i in range(MAX_BUNDLE + 2):
        bundle = merged_bundle(
            bundle, add=issue(("b",), now=NOW + timedelta(minutes=i)).ca_pem, now=NOW
        )
    bundle = merged_bundle(bundle, add=oldest, now=NOW)
    assert oldest in bundle
    assert len(bundle_certificates(bundle)) == MAX_BUNDLE
