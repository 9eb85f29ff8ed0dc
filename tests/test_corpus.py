"""The committed corpus of real packets: well formed, named for what it holds, safe to publish."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.dhcpwire import message_kind, options, unsafe

CORPUS = Path(__file__).resolve().parent.parent / "fuzz" / "corpus"
FILES = sorted(CORPUS.glob("*/*.bin"))
CLIENTS = {"udhcpc", "dhclient", "dhcpcd", "networkd", "perfdhcp", "nmap"}
SERVERS = {"dnsmasq", "kea"}


def test_corpus_covers_real_clients_and_servers() -> None:
    sources = {path.parent.name for path in FILES}
    assert sources >= CLIENTS | SERVERS
    kinds = {(path.parent.name, message_kind(path.read_bytes())) for path in FILES}
    for client in CLIENTS - {"nmap", "perfdhcp"}:
        assert {(client, "discover"), (client, "request"), (client, "release")} <= kinds
    for server in SERVERS:
        assert {(server, "offer"), (server, "ack"), (server, "nak")} <= kinds
    assert {("dhcpcd", "inform"), ("nmap", "inform")} <= kinds
    assert {("udhcpc", "decline"), ("dhcpcd", "decline")} <= kinds


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_corpus_file_is_the_message_its_name_says(path: Path) -> None:
    payload = path.read_bytes()
    source, kind, _ = path.stem.rsplit("-", 2)
    assert source == path.parent.name
    assert message_kind(payload) == kind
    # Requests come from clients (op 1), replies from servers (op 2).
    assert payload[0] == (2 if source in SERVERS else 1)
    assert any(code == 53 for code, _ in options(payload))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_corpus_file_holds_only_lab_macs_and_addresses(path: Path) -> None:
    assert unsafe(path.read_bytes(), hostname=b"") is None


def test_corpus_has_no_duplicates() -> None:
    payloads = [path.read_bytes() for path in FILES]
    assert len(set(payloads)) == len(payloads)
