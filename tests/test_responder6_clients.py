"""Who a DHCPv6 client is (DUIDs, frames, relays' option 79), relays and
reply destinations, real clients' packets, and properties of the Responder6
on arbitrary input."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv6Address
from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kvip.serving import (
    Reply6,
    Reservation6,
    Responder6,
    client_mac,
)
from protocol.dhcp6 import (
    IANA,
    IATA,
    Duid,
    DuidEN,
    DuidLL,
    DuidLLT,
    DuidUUID,
    IAAddress,
    Message,
    MessageType,
    Option,
    RapidCommit,
    RelayMessage,
    Status,
    decode,
    encode,
)
from tests.lab.pool_harness import mutations
from tests.lab.responder6 import (
    CAPTURED_SOLICITS,
    IP,
    MAC,
    OPTIONS,
    OTHER_IP,
    OTHER_MAC,
    RELAY_SOURCE,
    SERVER,
    SOURCE,
    UNKNOWN_MAC,
    addresses,
    answer,
    ask,
    client,
    holds_reservation,
    relay,
    responder,
    status,
)
from tests.lab.strategies6 import any_messages

# -- who is the client ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("duid", "source_mac"),
    [
        (DuidLL(1, MAC), None),
        (DuidLLT(1, 0x2F000000, MAC), None),
        (DuidLL(1, MAC), UNKNOWN_MAC),  # the DUID wins over an unreserved frame
        (DuidEN(32473, b"\x01\x02vm-1"), MAC),
        (DuidUUID(UUID("6f1b5bd2-1f2e-4b8c-9a3e-0123456789ab")), MAC),
        (DuidLLT(1, 0x2F000000, UNKNOWN_MAC), MAC),  # a host DUID from another NIC
        (DuidLL(6, MAC), MAC),  # not Ethernet: the DUID says nothing
    ],
)
def test_a_client_is_found_by_its_duid_or_its_frame(duid: Duid, source_mac: bytes) -> None:
    reply = answer(
        responder(), client(MessageType.SOLICIT, IANA(iaid=1), duid=duid), source_mac=source_mac
    )
    assert holds_reservation(reply.ia_nas[0])
    assert reply.client_duid == duid


def test_two_nics_of_one_vm_sharing_a_host_duid_are_told_apart_by_their_frames() -> None:
    r = responder()
    host_duid = DuidLLT(1, 0x2F000000, MAC)
    solicit = client(MessageType.SOLICIT, IANA(iaid=2), duid=host_duid)
    assert holds_reservation(answer(r, solicit, source_mac=OTHER_MAC).ia_nas[0], OTHER_IP)
    assert holds_reservation(answer(r, solicit, source_mac=MAC).ia_nas[0], IP)
    assert holds_reservation(answer(r, solicit).ia_nas[0], IP)


def test_a_duid_without_a_mac_and_no_frame_source_is_unknown() -> None:
    r = responder()
    solicit = client(MessageType.SOLICIT, IANA(iaid=1), duid=DuidEN(32473, b"vm-1"))
    assert ask(r, solicit) is None
    assert ask(r, solicit, source_mac=UNKNOWN_MAC) is None
    assert r.counters.unknown_mac == 2


def test_client_mac_takes_the_duid_then_the_frame_then_the_nearest_relays_option_79() -> None:
    en = client(MessageType.SOLICIT, duid=DuidEN(1, b"x"))
    assert client_mac(client(MessageType.SOLICIT), OTHER_MAC, ()) == MAC
    assert client_mac(en, OTHER_MAC, ()) == OTHER_MAC
    assert client_mac(en, None, ()) is None
    near, far = relay(en, mac=MAC), relay(en, hops=1, mac=OTHER_MAC)
    assert client_mac(en, UNKNOWN_MAC, (far, near)) == MAC
    assert client_mac(en, UNKNOWN_MAC, (far, relay(en))) is None  # never the relay's frame


def test_a_relayed_client_is_found_by_option_79_of_the_relay_next_to_it() -> None:
    solicit = client(MessageType.SOLICIT, IANA(iaid=1), duid=DuidEN(32473, b"vm-2"))
    nested = relay(relay(solicit, mac=OTHER_MAC, interface=b"eth0"), hops=1, mac=MAC)
    reply = answer(responder(), nested, source=RELAY_SOURCE, source_mac=MAC)
    assert holds_reservation(reply.ia_nas[0], OTHER_IP)
    # Without option 79 the frame's source is the relay, not the client.
    r = responder()
    assert ask(r, relay(solicit), source=RELAY_SOURCE, source_mac=OTHER_MAC) is None


@pytest.mark.parametrize("path", CAPTURED_SOLICITS, ids=lambda p: p.name)
def test_real_clients_solicits_get_their_reservation(path: Path) -> None:
    """dhclient, dhcpcd (DUID-LLT, -LL, -UUID, -EN), dhcp6c, systemd-networkd
    (DUID-EN, DUID-LL) and a dnsmasq relay, as captured: each gets the address of the MAC it is
    identified by (for DUIDs without one, the frame's source)."""
    data = path.read_bytes()
    message = decode(data)
    relays = []
    while isinstance(message, RelayMessage):
        relays.append(message)
        assert message.relayed is not None
        message = message.relayed
    assert message.msg_type in (MessageType.SOLICIT, MessageType.REQUEST)
    mac = client_mac(message, None, relays) or MAC
    r = Responder6(OPTIONS, SERVER)
    r.set_reservation(mac.hex(":"), Reservation6(IP))
    source = RELAY_SOURCE if relays else SOURCE
    reply = r.handle(data, 0.0, source, MAC)
    if message.msg_type == MessageType.REQUEST:  # names dnsmasq, not us
        assert reply is None and r.counters.ignored == 1
        return
    assert reply is not None and reply.address[1] == (547 if relays else 546)
    answered = decode(reply.payload)
    inner = answered.innermost if isinstance(answered, RelayMessage) else answered
    assert inner is not None and inner.transaction_id == message.transaction_id
    if not message.ia_nas:  # dhclient -T (IA_TA) and -P (IA_PD): nothing to give
        assert inner.msg_type == MessageType.ADVERTISE
        assert status(inner.options) == Status.NO_ADDRS_AVAIL and not inner.ia_nas
        return
    expected = MessageType.REPLY if message.rapid_commit else MessageType.ADVERTISE
    assert inner.msg_type == expected
    assert addresses(inner.ia_nas[0])[0].address == IP


# -- relays and destinations -----------------------------------------------------------


def test_relayed_replies_go_back_through_every_relay_with_their_fields() -> None:
    solicit = client(MessageType.SOLICIT, IANA(iaid=1))
    inner = relay(solicit, interface=b"vlan10", mac=MAC)
    outer = relay(inner, hops=1)
    reply = ask(responder(), outer, source=("2001:db8:9::1", 547, 5, 2), source_mac=UNKNOWN_MAC)
    assert reply is not None
    assert reply.address == ("2001:db8:9::1", 547, 0, 2)
    assert reply.message_type == MessageType.ADVERTISE
    top = decode(reply.payload)
    assert isinstance(top, RelayMessage) and top.msg_type == MessageType.RELAY_REPL
    assert (top.hop_count, top.link_address, top.peer_address) == (
        outer.hop_count, outer.link_address, outer.peer_address,
    )  # fmt: skip
    assert top.interface_id is None
    below = top.relayed
    assert isinstance(below, RelayMessage) and below.msg_type == MessageType.RELAY_REPL
    assert (below.hop_count, below.link_address, below.peer_address, below.interface_id) == (
        0, inner.link_address, inner.peer_address, b"vlan10",
    )  # fmt: skip
    innermost = below.relayed
    assert isinstance(innermost, Message) and holds_reservation(innermost.ia_nas[0])


def test_relay_replies_and_server_messages_are_not_answered() -> None:
    r = responder()
    for kind in (MessageType.ADVERTISE, MessageType.REPLY, MessageType.RECONFIGURE):
        assert ask(r, client(kind, IANA(iaid=1), server=SERVER)) is None
    repl = replace(
        relay(client(MessageType.SOLICIT, IANA(iaid=1))), msg_type=MessageType.RELAY_REPL
    )
    assert ask(r, repl) is None
    assert r.counters.ignored == 4 and not r.counters.sent


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x0c" + bytes(10), bytes(300)])
def test_malformed_packets_are_counted_and_dropped(data: bytes) -> None:
    r = responder()
    assert r.handle(data, 0.0, SOURCE, MAC) is None
    assert r.counters.malformed == 1


# -- properties ----------------------------------------------------------------------------


def offered(reply: Reply6) -> list[IPv6Address]:
    """Every address a reply lets the client use (a valid lifetime above 0)."""
    decoded = decode(reply.payload)
    inner = decoded.innermost if isinstance(decoded, RelayMessage) else decoded
    assert inner is not None
    return [
        a.address
        for ia in inner.options
        if isinstance(ia, IANA | IATA)
        for a in addresses(ia)
        if a.valid_lifetime
    ]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=400)
    | any_messages().map(encode)
    | any_messages().flatmap(lambda m: mutations(encode(m))),
    st.sampled_from([None, MAC, OTHER_MAC, UNKNOWN_MAC]),
)
@example(b"\x0c" + bytes(33) + b"\x00\x09\x00\x04\x01\x00\x00\x01", MAC)
def test_any_input_is_answered_safely(data: bytes, source_mac: bytes | None) -> None:
    r = responder()
    r.mark_declined(OTHER_IP)
    reply = r.handle(data, 0.0, SOURCE, source_mac)
    if reply is not None:
        decode(reply.payload)
        assert offered(reply) in ([], [IP])


ias = st.lists(
    st.builds(
        IANA,
        iaid=st.integers(0, 3),
        options=st.lists(
            st.builds(
                IAAddress, address=st.sampled_from([IP, OTHER_IP, IPv6Address("2001:db8:7::1")])
            ),
            max_size=2,
        ).map(tuple),
    ),
    max_size=3,
)


@settings(max_examples=300)
@given(
    st.sampled_from([k for k in MessageType if k < MessageType.RELAY_FORW]),
    st.sampled_from([MAC, OTHER_MAC, UNKNOWN_MAC]),
    st.sampled_from([None, MAC, OTHER_MAC, UNKNOWN_MAC]),
    ias,
    st.booleans(),
    st.booleans(),
)
def test_an_address_offered_to_a_mac_is_exactly_its_reservation(
    kind: MessageType,
    duid_mac: bytes,
    source_mac: bytes | None,
    held: list[IANA],
    relayed: bool,
    rapid: bool,
) -> None:
    r = responder()
    extra: tuple[Option, ...] = (RapidCommit(),) if rapid else ()
    message: Message | RelayMessage = client(kind, *held, *extra, duid=DuidLL(1, duid_mac))
    if relayed:
        message = relay(message, mac=source_mac)
    reply = ask(r, message, source=RELAY_SOURCE if relayed else SOURCE, source_mac=source_mac)
    if reply is None:
        return
    reserved = {MAC: IP, OTHER_MAC: OTHER_IP}
    # The frame (or option 79) names the NIC when reserved; else the DUID does.
    owner = source_mac if source_mac in reserved else duid_mac
    expected = (
        [reserved[owner]] if owner in reserved and held and kind != MessageType.CONFIRM else []
    )
    if kind in (MessageType.RELEASE, MessageType.DECLINE, MessageType.INFORMATION_REQUEST):
        expected = []
    assert offered(reply) == expected
    assert reply.address[1] == (547 if relayed else 546)
