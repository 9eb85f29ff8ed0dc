"""RFC 8415 behaviour of a pool for static reservations, driven without sockets
(the Responder6): every message type, every way a client is identified,
relays, and properties on arbitrary input."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import kvip.serving
from kvip.serving import (
    Declined,
    PoolOptions6,
    Released,
    Reply6,
    Reservation6,
    Responder6,
    client_mac,
    pool_server_duid,
)
from protocol.dhcp6 import (
    IANA,
    IAPD,
    IATA,
    ClientId,
    ClientLinkLayerAddress,
    DnsServers,
    DomainList,
    Duid,
    DuidEN,
    DuidLL,
    DuidLLT,
    DuidUUID,
    IAAddress,
    IAPrefix,
    InterfaceId,
    Message,
    MessageType,
    NtpServer,
    NtpServerAddress,
    NtpServerFqdn,
    Option,
    OptionRequest,
    Preference,
    RapidCommit,
    RelayMessage,
    RelayMessageOption,
    ServerId,
    Status,
    StatusCode,
    decode,
    encode,
)
from tests.lab.pool_harness import mutations
from tests.lab.strategies6 import any_messages

MAC = bytes.fromhex("525400123456")
OTHER_MAC = bytes.fromhex("525400654321")
UNKNOWN_MAC = bytes.fromhex("5254000000ff")
IP = IPv6Address("2001:db8:1::10")
OTHER_IP = IPv6Address("2001:db8:1::11")
SUBNET = IPv6Network("2001:db8:1::/64")
SERVER = pool_server_duid("dual-stack")
ANOTHER_SERVER = pool_server_duid("someone-else")
CLIENT = DuidLL(1, MAC)
SOURCE = ("fe80::5054:ff:fe12:3456", 546, 0, 7)
RELAY_SOURCE = ("2001:db8:2::1", 547, 0, 0)
CORPUS6 = Path(__file__).resolve().parent.parent / "fuzz" / "corpus6"
CAPTURED_SOLICITS = sorted(
    p for p in CORPUS6.glob("*/*solicit*") if p.parent.name != "synthetic"
) + sorted(CORPUS6.glob("*/*relay-forw*"))

OPTIONS = PoolOptions6(
    subnet=SUBNET,
    dns=(IPv6Address("2001:db8:1::53"),),
    domain_search=("example.test", "lab.example.test"),
    ntp=(IPv6Address("2001:db8:1::123"),),
    ntp_names=("ntp.example.test",),
    preferred_lifetime=1000,
    valid_lifetime=2000,
)
CONFIGURATION = (
    DnsServers((IPv6Address("2001:db8:1::53"),)),
    DomainList(("example.test", "lab.example.test")),
    NtpServer((NtpServerAddress(IPv6Address("2001:db8:1::123")),)),
    NtpServer((NtpServerFqdn("ntp.example.test"),)),
)
NAMING_TYPES = (
    MessageType.REQUEST,
    MessageType.RENEW,
    MessageType.RELEASE,
    MessageType.DECLINE,
)


def responder(options: PoolOptions6 = OPTIONS) -> Responder6:
    r = Responder6(options, SERVER)
    r.set_reservation(MAC.hex(":"), Reservation6(IP, "vm1"))
    r.set_reservation(OTHER_MAC.hex(":"), Reservation6(OTHER_IP, "vm2"))
    return r


def client(
    kind: MessageType,
    *options: Option,
    duid: Duid | None = CLIENT,
    server: Duid | None = None,
    xid: int = 0xABCDEF,
) -> Message:
    """A client's message; REQUEST, RENEW, RELEASE and DECLINE name our server
    unless `server` says otherwise."""
    if server is None and kind in NAMING_TYPES:
        server = SERVER
    head: list[Option] = []
    if duid is not None:
        head.append(ClientId(duid))
    if server is not None:
        head.append(ServerId(server))
    return Message(msg_type=kind, transaction_id=xid, options=(*head, *options))


def relay(
    inner: Message | RelayMessage, *, hops: int = 0, interface: bytes | None = None,
    mac: bytes | None = None,
) -> RelayMessage:  # fmt: skip
    options: list[Option] = []
    if interface is not None:
        options.append(InterfaceId(interface))
    options.append(RelayMessageOption(inner))
    if mac is not None:
        options.append(ClientLinkLayerAddress(1, mac))
    return RelayMessage(
        msg_type=MessageType.RELAY_FORW,
        hop_count=hops,
        link_address=IPv6Address(f"2001:db8:{hops + 2}::1"),
        peer_address=IPv6Address(f"fe80::{hops + 1}"),
        options=tuple(options),
    )


def ask(
    r: Responder6,
    message: Message | RelayMessage,
    *,
    source: tuple[str, int, int, int] = SOURCE,
    source_mac: bytes | None = None,
) -> Reply6 | None:
    return r.handle(encode(message), 1.0, source, source_mac)


def answer(
    r: Responder6,
    message: Message | RelayMessage,
    *,
    source: tuple[str, int, int, int] = SOURCE,
    source_mac: bytes | None = None,
) -> Message:
    """The reply (decoded, relay layers taken off) to `message`."""
    reply = ask(r, message, source=source, source_mac=source_mac)
    assert reply is not None
    decoded = decode(reply.payload)
    inner = decoded.innermost if isinstance(decoded, RelayMessage) else decoded
    assert inner is not None
    assert inner.msg_type == reply.message_type
    assert inner.transaction_id == 0xABCDEF
    assert inner.server_duid == SERVER
    return inner


def addresses(ia: IANA | IATA) -> list[IAAddress]:
    return [o for o in ia.options if isinstance(o, IAAddress)]


def status(options: tuple[Option, ...]) -> int | None:
    found = [o for o in options if isinstance(o, StatusCode)]
    return found[0].status if found else None


def holds_reservation(ia: IANA, ip: IPv6Address = IP) -> bool:
    return (
        ia.t1 == 500
        and ia.t2 == 800
        and addresses(ia)[0] == IAAddress(address=ip, preferred_lifetime=1000, valid_lifetime=2000)
        and status(ia.options) is None
    )


# -- SOLICIT -------------------------------------------------------------------------


def test_solicit_gets_an_advertise_of_the_reserved_address_with_the_pool_options() -> None:
    r = responder()
    reply = ask(r, client(MessageType.SOLICIT, IANA(iaid=7), OptionRequest((23, 24))))
    assert reply is not None
    assert reply.message_type == MessageType.ADVERTISE
    assert reply.address == ("fe80::5054:ff:fe12:3456", 546, 0, 7)
    advertise = decode(reply.payload)
    assert isinstance(advertise, Message)
    assert advertise.options == (
        ServerId(SERVER),
        ClientId(CLIENT),
        IANA(
            iaid=7,
            t1=500,
            t2=800,
            options=(IAAddress(address=IP, preferred_lifetime=1000, valid_lifetime=2000),),
        ),
        Preference(255),
        *CONFIGURATION,
    )
    assert r.counters.received["SOLICIT"] == 1 and r.counters.sent["ADVERTISE"] == 1
    assert r.last == (1.0, MAC, "SOLICIT")


def test_rapid_commit_solicit_gets_a_reply_when_the_pool_allows_it() -> None:
    solicit = client(MessageType.SOLICIT, IANA(iaid=1), RapidCommit())
    reply = answer(responder(), solicit)
    assert reply.msg_type == MessageType.REPLY and reply.rapid_commit
    assert holds_reservation(reply.ia_nas[0])
    off = answer(responder(replace(OPTIONS, rapid_commit=False)), solicit)
    assert off.msg_type == MessageType.ADVERTISE and not off.rapid_commit
    plain = answer(responder(), client(MessageType.SOLICIT, IANA(iaid=1)))
    assert plain.msg_type == MessageType.ADVERTISE and not plain.rapid_commit


def test_other_ias_get_the_statuses_rfc_8415_asks_for() -> None:
    prefix = IAPrefix(prefix_length=56, prefix=IPv6Address("::"))
    solicit = client(
        MessageType.SOLICIT,
        IATA(iaid=1),
        IANA(iaid=2),
        IAPD(iaid=3, options=(prefix,)),
        IANA(iaid=4),
    )
    reply = answer(responder(), solicit)
    ta, pd = reply.ia_tas[0], reply.ia_pds[0]
    first, second = reply.ia_nas
    assert (ta.iaid, addresses(ta), status(ta.options)) == (1, [], Status.NO_ADDRS_AVAIL)
    assert holds_reservation(first) and first.iaid == 2
    assert (pd.iaid, status(pd.options)) == (3, Status.NO_PREFIX_AVAIL)
    assert (second.iaid, addresses(second)) == (4, [])
    assert status(second.options) == Status.NO_ADDRS_AVAIL


def test_a_solicit_with_nothing_to_assign_gets_the_ids_and_no_addrs_avail_only() -> None:
    reply = answer(responder(), client(MessageType.SOLICIT, IAPD(iaid=3), IATA(iaid=1)))
    assert reply.msg_type == MessageType.ADVERTISE
    assert reply.options == (
        ServerId(SERVER),
        ClientId(CLIENT),
        StatusCode(Status.NO_ADDRS_AVAIL, "no address reserved for this client"),
    )


def test_unknown_client_solicit_gets_no_answer() -> None:
    r = responder()
    assert ask(r, client(MessageType.SOLICIT, IANA(iaid=1), duid=DuidLL(1, UNKNOWN_MAC))) is None
    assert r.counters.unknown_mac == 1 and not r.counters.sent


def test_solicit_naming_a_server_or_without_client_id_is_discarded() -> None:
    r = responder()
    assert ask(r, client(MessageType.SOLICIT, IANA(iaid=1), server=SERVER)) is None
    no_id = client(MessageType.SOLICIT, IANA(iaid=1), duid=None)
    assert ask(r, no_id, source_mac=MAC) is None
    assert r.counters.ignored == 2


def test_a_draining_replica_takes_no_solicit_but_answers_the_rest() -> None:
    r = responder()
    r.drain()
    assert ask(r, client(MessageType.SOLICIT, IANA(iaid=1), RapidCommit())) is None
    assert holds_reservation(answer(r, client(MessageType.REQUEST, IANA(iaid=1))).ia_nas[0])
    assert holds_reservation(answer(r, client(MessageType.RENEW, IANA(iaid=1))).ia_nas[0])


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
    """dhclient, dhcpcd (DUID-LLT, -LL, -UUID, -EN), systemd-networkd and a
    dnsmasq relay, as captured: each gets the address of the MAC it is
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


# -- REQUEST, RENEW, REBIND -----------------------------------------------------------


def test_request_for_us_is_answered_with_the_reservation() -> None:
    reply = answer(responder(), client(MessageType.REQUEST, IANA(iaid=1)))
    assert reply.msg_type == MessageType.REPLY
    assert holds_reservation(reply.ia_nas[0])
    assert reply.options[-len(CONFIGURATION) :] == CONFIGURATION


@pytest.mark.parametrize("kind", NAMING_TYPES)
def test_messages_for_another_server_or_none_are_ignored(kind: MessageType) -> None:
    r = responder()
    assert (
        ask(r, client(kind, IANA(iaid=1, options=(IAAddress(address=IP),)), server=ANOTHER_SERVER))
        is None
    )
    no_server = Message(msg_type=kind, transaction_id=1, options=(ClientId(CLIENT), IANA(iaid=1)))
    assert ask(r, no_server) is None
    assert r.counters.ignored == 2 and not r.notices and not r.declined


def test_an_unknown_client_requesting_from_us_gets_no_addrs_avail() -> None:
    r = responder()
    hint = IANA(iaid=1, options=(IAAddress(address=IP),))
    reply = answer(r, client(MessageType.REQUEST, hint, duid=DuidLL(1, UNKNOWN_MAC)))
    ia = reply.ia_nas[0]
    assert (addresses(ia), status(ia.options)) == ([], Status.NO_ADDRS_AVAIL)
    assert r.counters.naks == 1 and r.counters.unknown_mac == 1


def test_renew_keeps_the_reservation_and_withdraws_every_other_address() -> None:
    stale = IPv6Address("2001:db8:7::5")
    renew = client(
        MessageType.RENEW,
        IANA(iaid=1, options=(IAAddress(address=stale), IAAddress(address=IP))),
        IANA(iaid=2, options=(IAAddress(address=OTHER_IP),)),
        IAPD(iaid=3),
    )
    reply = answer(responder(), renew)
    first, second = reply.ia_nas
    assert holds_reservation(first)
    assert addresses(first)[1:] == [IAAddress(address=stale)]  # lifetimes 0
    assert addresses(second) == [] and status(second.options) == Status.NO_BINDING
    assert status(reply.ia_pds[0].options) == Status.NO_BINDING


def test_renew_from_an_unknown_client_gets_no_binding() -> None:
    renew = client(
        MessageType.RENEW,
        IANA(iaid=1, options=(IAAddress(address=IP),)),
        duid=DuidLL(1, UNKNOWN_MAC),
    )
    ia = answer(responder(), renew).ia_nas[0]
    assert (addresses(ia), status(ia.options)) == ([], Status.NO_BINDING)


def test_rebind_is_answered_for_known_clients_only() -> None:
    off_link = IPv6Address("2001:db8:7::5")
    rebind = client(MessageType.REBIND, IANA(iaid=1, options=(IAAddress(address=off_link),)))
    first = answer(responder(), rebind).ia_nas[0]
    assert holds_reservation(first)
    assert addresses(first)[1:] == [IAAddress(address=off_link)]
    r = responder()
    assert ask(r, client(MessageType.REBIND, IANA(iaid=1), duid=DuidLL(1, UNKNOWN_MAC))) is None
    assert ask(r, client(MessageType.REBIND, IANA(iaid=1), server=SERVER)) is None
    assert not r.counters.sent


# -- CONFIRM, RELEASE, DECLINE, INFORMATION-REQUEST ----------------------------------


def test_confirm_says_whether_the_addresses_are_on_the_link() -> None:
    r = responder()
    on_link = client(MessageType.CONFIRM, IANA(iaid=1, options=(IAAddress(address=IP),)))
    assert answer(r, on_link).options[2:] == (StatusCode(Status.SUCCESS, ""),)
    moved = IANA(
        iaid=1, options=(IAAddress(address=IP), IAAddress(address=IPv6Address("2001:db8:7::5")))
    )
    reply = answer(r, client(MessageType.CONFIRM, moved))
    assert status(reply.options) == Status.NOT_ON_LINK and not reply.ia_nas
    assert ask(r, client(MessageType.CONFIRM, IANA(iaid=1))) is None
    unknown = client(
        MessageType.CONFIRM,
        IANA(iaid=1, options=(IAAddress(address=IP),)),
        duid=DuidLL(1, UNKNOWN_MAC),
    )
    assert ask(r, unknown) is None


def test_release_is_acknowledged_and_the_address_stays_reserved() -> None:
    r = responder()
    release = client(
        MessageType.RELEASE, IANA(iaid=1, options=(IAAddress(address=IP),)), IANA(iaid=2)
    )
    reply = answer(r, release)
    assert status(reply.options) == Status.SUCCESS
    assert [ia.iaid for ia in reply.ia_nas] == [2]  # the IA without a binding
    assert status(reply.ia_nas[0].options) == Status.NO_BINDING
    assert r.notices == [Released(MAC.hex(":"), IP)]
    assert r.counters.releases == 1
    assert holds_reservation(answer(r, client(MessageType.SOLICIT, IANA(iaid=1))).ia_nas[0])


def test_decline_is_reported_and_the_address_not_offered_until_cleared() -> None:
    r = responder()
    decline = client(MessageType.DECLINE, IANA(iaid=1, options=(IAAddress(address=IP),)))
    assert status(answer(r, decline).options) == Status.SUCCESS
    assert r.notices == [Declined(MAC.hex(":"), IP, None)]
    assert r.declined == {IP} and r.counters.declines == 1
    advertise = answer(r, client(MessageType.SOLICIT, IANA(iaid=1), RapidCommit()))
    assert advertise.msg_type == MessageType.ADVERTISE
    assert [type(o) for o in advertise.options[2:]] == [StatusCode]  # RFC 8415 18.3.9
    assert status(advertise.options) == Status.NO_ADDRS_AVAIL
    renewed = answer(r, client(MessageType.RENEW, IANA(iaid=1, options=(IAAddress(address=IP),))))
    ia = renewed.ia_nas[0]
    assert addresses(ia) == [IAAddress(address=IP)] and status(ia.options) == Status.NO_ADDRS_AVAIL
    assert r.clear_declined(IP) and not r.clear_declined(IP)
    assert holds_reservation(answer(r, client(MessageType.SOLICIT, IANA(iaid=1))).ia_nas[0])
    assert r.mark_declined(IP) and not r.mark_declined(IP)
    assert len(r.notices) == 1  # marking what another replica saw is not news


def test_release_or_decline_of_an_address_not_the_clients_changes_nothing() -> None:
    r = responder()
    for kind in (MessageType.RELEASE, MessageType.DECLINE):
        reply = answer(r, client(kind, IANA(iaid=1, options=(IAAddress(address=OTHER_IP),))))
        assert status(reply.ia_nas[0].options) == Status.NO_BINDING
    assert not r.notices and not r.declined


def test_information_request_gets_configuration_only() -> None:
    r = responder()
    reply = answer(r, client(MessageType.INFORMATION_REQUEST, OptionRequest((23,))))
    assert reply.options == (ServerId(SERVER), ClientId(CLIENT), *CONFIGURATION)
    anonymous = Message(msg_type=MessageType.INFORMATION_REQUEST, transaction_id=0xABCDEF)
    assert answer(r, anonymous, source_mac=MAC).options == (ServerId(SERVER), *CONFIGURATION)
    assert ask(r, anonymous, source_mac=UNKNOWN_MAC) is None
    assert ask(r, client(MessageType.INFORMATION_REQUEST, IANA(iaid=1))) is None
    assert ask(r, client(MessageType.INFORMATION_REQUEST, server=ANOTHER_SERVER)) is None


# -- the actor's changes -----------------------------------------------------------------


def test_option_and_reservation_changes_reach_the_very_next_reply() -> None:
    r = responder()
    r.set_options(
        replace(OPTIONS, dns=(), domain_search=(), ntp=(), ntp_names=(), preferred_lifetime=10)
    )
    reply = answer(r, client(MessageType.REQUEST, IANA(iaid=1)))
    assert reply.options[3:] == ()
    assert (reply.ia_nas[0].t1, addresses(reply.ia_nas[0])[0].preferred_lifetime) == (5, 10)
    assert r.remove_reservation(MAC.hex(":")) == Reservation6(IP, "vm1")
    assert ask(r, client(MessageType.SOLICIT, IANA(iaid=1))) is None


def test_the_dhcpv6_server_is_part_of_the_public_face() -> None:
    public = {"Reply6", "Responder6", "client_mac", "CLIENT_PORT6", "SERVER_PORT6"}
    assert public <= set(kvip.serving.__all__)
    assert (kvip.serving.CLIENT_PORT6, kvip.serving.SERVER_PORT6) == (546, 547)


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
