"""RFC 2131 behaviour of a pool, driven without sockets (the Responder)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network

import pytest

from kvip.serving import PoolOptions, Reply, Reservation, Responder
from protocol import (
    ClasslessRoute,
    Message,
    MessageType,
    Op,
    OptionCode,
    Options,
    RelayAgentInformation,
    decode,
    encode,
)

SERVER = IPv4Address("198.18.0.1")
ROUTER = IPv4Address("198.18.0.254")
MAC = "52:54:00:12:34:56"
OTHER_MAC = "52:54:00:65:43:21"
IP = IPv4Address("198.18.0.10")
ZERO = IPv4Address(0)

OPTIONS = PoolOptions(
    server_ip=SERVER,
    subnet=IPv4Network("198.18.0.0/16"),
    router=ROUTER,
    dns=(IPv4Address("198.18.0.53"), IPv4Address("198.18.0.54")),
    domain_name="example.test",
    domain_search=("example.test", "lab.example.test"),
    ntp=(IPv4Address("198.18.0.123"),),
    lease_time=600,
)


def responder(options: PoolOptions = OPTIONS) -> Responder:
    r = Responder(options)
    r.set_reservation(MAC, Reservation(IP, "vm1"))
    return r


def request(
    kind: MessageType,
    *,
    mac: str = MAC,
    xid: int = 0x1234ABCD,
    flags: int = 0,
    ciaddr: IPv4Address = ZERO,
    giaddr: IPv4Address = ZERO,
    hops: int = 0,
    **options: object,
) -> bytes:
    opts: dict[int, object] = {OptionCode.MESSAGE_TYPE: kind}
    names = {name.lower(): code for name, code in OptionCode.__members__.items()}
    for name, value in options.items():
        opts[names[name]] = value
    message = Message(
        op=Op.BOOTREQUEST,
        xid=xid,
        chaddr=bytes.fromhex(mac.replace(":", "")),
        flags=flags,
        ciaddr=ciaddr,
        giaddr=giaddr,
        hops=hops,
        options=Options(opts),
    )
    return encode(message)


def answer(r: Responder, data: bytes) -> tuple[Reply, Message]:
    reply = r.handle(data)
    assert reply is not None
    return reply, decode(reply.payload)


def test_discover_gets_offer_of_the_reserved_address_with_pool_options() -> None:
    r = responder()
    reply, offer = answer(r, request(MessageType.DISCOVER, flags=0x8000))
    assert offer.op == Op.BOOTREPLY
    assert offer.message_type == MessageType.OFFER
    assert offer.yiaddr == IP
    assert offer.xid == 0x1234ABCD and offer.flags == 0x8000
    assert offer.chaddr == bytes.fromhex(MAC.replace(":", ""))
    o = offer.options
    assert o[OptionCode.SERVER_ID] == SERVER
    assert o[OptionCode.LEASE_TIME] == 600
    assert o[OptionCode.RENEWAL_TIME] == 300
    assert o[OptionCode.REBINDING_TIME] == 525
    assert o[OptionCode.SUBNET_MASK] == IPv4Address("255.255.0.0")
    assert o[OptionCode.ROUTER] == (IPv4Address("198.18.0.254"),)
    assert o[OptionCode.DNS] == OPTIONS.dns
    assert o[OptionCode.DOMAIN_NAME] == "example.test"
    assert o[OptionCode.DOMAIN_SEARCH] == ("example.test", "lab.example.test")
    assert o[OptionCode.NTP_SERVERS] == OPTIONS.ntp
    assert OptionCode.HOST_NAME not in o  # not asked for
    assert next(iter(o)) == OptionCode.MESSAGE_TYPE
    assert len(reply.payload) >= 300  # RFC 1542
    assert reply.address == ("255.255.255.255", 68)
    assert r.counters.received["DISCOVER"] == 1 and r.counters.sent["OFFER"] == 1


def test_unknown_mac_gets_no_answer() -> None:
    r = responder()
    assert r.handle(request(MessageType.DISCOVER, mac=OTHER_MAC)) is None
    assert r.handle(request(MessageType.REQUEST, mac=OTHER_MAC, requested_ip=IP)) is None
    assert r.counters.unknown_mac == 2
    assert not r.counters.sent


def test_options_follow_the_parameter_request_list_order() -> None:
    r = responder()
    prl = (OptionCode.NTP_SERVERS, OptionCode.DNS, OptionCode.HOST_NAME, OptionCode.ROUTER)
    _, offer = answer(r, request(MessageType.DISCOVER, parameter_request_list=prl))
    codes = [c for c in offer.options if c in prl]
    assert codes == list(prl)
    assert offer.options[OptionCode.HOST_NAME] == "vm1"


def test_selecting_request_for_us_is_acked() -> None:
    r = responder()
    _, ack = answer(r, request(MessageType.REQUEST, server_id=SERVER, requested_ip=IP))
    assert ack.message_type == MessageType.ACK and ack.yiaddr == IP
    assert ack.options[OptionCode.LEASE_TIME] == 600


def test_selecting_request_for_another_server_is_ignored() -> None:
    r = responder()
    other = IPv4Address("198.18.0.2")
    assert r.handle(request(MessageType.REQUEST, server_id=other, requested_ip=IP)) is None
    assert r.counters.ignored == 1


def test_selecting_request_for_a_wrong_address_is_naked() -> None:
    r = responder()
    wrong = IPv4Address("198.18.0.99")
    reply, nak = answer(
        r, request(MessageType.REQUEST, server_id=SERVER, requested_ip=wrong, flags=0)
    )
    assert nak.message_type == MessageType.NAK
    assert nak.yiaddr == IPv4Address(0) and nak.ciaddr == IPv4Address(0)
    assert set(nak.options) <= {OptionCode.MESSAGE_TYPE, OptionCode.SERVER_ID, OptionCode.MESSAGE}
    assert reply.address == ("255.255.255.255", 68)  # RFC 2131 4.1: NAKs are broadcast
    assert r.counters.naks == 1


def test_init_reboot_with_a_wrong_address_is_naked_then_right_one_acked() -> None:
    r = responder()
    _, nak = answer(r, request(MessageType.REQUEST, requested_ip=IPv4Address("198.18.7.7")))
    assert nak.message_type == MessageType.NAK
    _, ack = answer(r, request(MessageType.REQUEST, requested_ip=IP))
    assert ack.message_type == MessageType.ACK and ack.yiaddr == IP


def test_renewing_is_acked_by_unicast_to_ciaddr() -> None:
    r = responder()
    reply, ack = answer(r, request(MessageType.REQUEST, ciaddr=IP))
    assert ack.message_type == MessageType.ACK
    assert ack.ciaddr == IP and ack.yiaddr == IP
    assert reply.address == (str(IP), 68)


def test_rebinding_with_a_wrong_ciaddr_is_naked() -> None:
    r = responder()
    _, nak = answer(r, request(MessageType.REQUEST, ciaddr=IPv4Address("198.18.9.9"), flags=0x8000))
    assert nak.message_type == MessageType.NAK


def test_relayed_request_goes_to_giaddr_with_option_82_echoed_last() -> None:
    r = responder()
    relay = IPv4Address("198.18.100.1")
    info = RelayAgentInformation(((1, b"circuit-7"), (2, b"remote")))
    reply, offer = answer(
        r, request(MessageType.DISCOVER, giaddr=relay, hops=1, relay_agent_info=info)
    )
    assert reply.address == (str(relay), 67)
    assert offer.giaddr == relay and offer.hops == 0
    assert offer.options[OptionCode.RELAY_AGENT_INFO] == info
    assert list(offer.options)[-1] == OptionCode.RELAY_AGENT_INFO


def test_relayed_nak_goes_to_giaddr_with_the_broadcast_bit_set() -> None:
    # RFC 2131 4.3.2: the client may have no usable address; the relay must broadcast it.
    r = responder()
    relay = IPv4Address("198.18.100.1")
    wrong = IPv4Address("198.18.7.7")
    reply, nak = answer(r, request(MessageType.REQUEST, giaddr=relay, hops=1, requested_ip=wrong))
    assert nak.message_type == MessageType.NAK
    assert reply.address == (str(relay), 67)
    assert nak.broadcast and nak.giaddr == relay
    # The same client's next, unrelayed NAK keeps the flags it sent (the reply cache
    # must not leak the forced bit).
    _, direct = answer(r, request(MessageType.REQUEST, requested_ip=wrong))
    assert not direct.broadcast
    # Replies other than NAK keep the client's flags even when relayed.
    _, offer = answer(r, request(MessageType.DISCOVER, giaddr=relay, hops=1))
    assert not offer.broadcast


def test_too_many_hops_are_dropped() -> None:
    r = responder()
    relay = IPv4Address("198.18.100.1")
    assert r.handle(request(MessageType.DISCOVER, giaddr=relay, hops=17)) is None


def test_client_identifier_is_echoed() -> None:
    r = responder()
    duid = b"\xff\x00\x00\x00\x01\x00\x04" + bytes(range(16))
    _, offer = answer(r, request(MessageType.DISCOVER, client_id=duid))
    assert offer.options[OptionCode.CLIENT_ID] == duid


def test_inform_gets_configuration_without_lease() -> None:
    r = responder()
    reply, ack = answer(r, request(MessageType.INFORM, ciaddr=IP))
    assert ack.message_type == MessageType.ACK
    assert ack.yiaddr == IPv4Address(0) and ack.ciaddr == IP
    assert OptionCode.LEASE_TIME not in ack.options
    assert OptionCode.RENEWAL_TIME not in ack.options
    assert ack.options[OptionCode.DNS] == OPTIONS.dns
    assert reply.address == (str(IP), 68)


def test_release_gets_no_reply_and_keeps_the_reservation() -> None:
    r = responder()
    assert r.handle(request(MessageType.RELEASE, ciaddr=IP, server_id=SERVER)) is None
    assert r.counters.releases == 1
    _, offer = answer(r, request(MessageType.DISCOVER))
    assert offer.yiaddr == IP


def test_release_to_another_server_is_ignored() -> None:
    """RFC 2131 4.3.4 with several servers (issue 12): a RELEASE names the server
    that gave the lease; another replica counts it as ignored and does nothing."""
    r = responder()
    other = IPv4Address("198.18.0.2")
    assert r.handle(request(MessageType.RELEASE, ciaddr=IP, server_id=other)) is None
    assert (r.counters.ignored, r.counters.releases) == (1, 0)
    assert r.notices == []
    _, offer = answer(r, request(MessageType.DISCOVER))
    assert offer.yiaddr == IP


def test_decline_to_another_server_is_ignored() -> None:
    r = responder()
    other = IPv4Address("198.18.0.2")
    assert r.handle(request(MessageType.DECLINE, requested_ip=IP, server_id=other)) is None
    assert (r.counters.ignored, r.counters.declines) == (1, 0)
    assert r.notices == [] and r.declined == set()
    _, offer = answer(r, request(MessageType.DISCOVER))
    assert offer.yiaddr == IP


def test_decline_is_reported_and_the_address_not_offered_again() -> None:
    r = responder()
    assert r.handle(request(MessageType.DECLINE, requested_ip=IP, server_id=SERVER)) is None
    assert r.counters.declines == 1
    assert [n.ip for n in r.notices] == [IP]
    assert r.handle(request(MessageType.DISCOVER)) is None
    _, nak = answer(r, request(MessageType.REQUEST, requested_ip=IP))
    assert nak.message_type == MessageType.NAK
    assert r.clear_declined(IP)
    _, offer = answer(r, request(MessageType.DISCOVER))
    assert offer.yiaddr == IP


def test_rapid_commit_discover_gets_an_ack() -> None:
    r = responder()
    _, ack = answer(r, request(MessageType.DISCOVER, rapid_commit=b""))
    assert ack.message_type == MessageType.ACK and ack.yiaddr == IP
    assert OptionCode.RAPID_COMMIT in ack.options


def test_option_change_reaches_the_very_next_reply() -> None:
    r = responder()
    answer(r, request(MessageType.DISCOVER))
    r.set_options(
        PoolOptions(
            server_ip=SERVER,
            subnet=OPTIONS.subnet,
            router=OPTIONS.router,
            dns=(IPv4Address("198.18.1.1"),),
            lease_time=120,
            mtu=1450,
        )
    )
    _, offer = answer(r, request(MessageType.DISCOVER))
    assert offer.options[OptionCode.DNS] == (IPv4Address("198.18.1.1"),)
    assert offer.options[OptionCode.LEASE_TIME] == 120
    assert offer.options[OptionCode.INTERFACE_MTU] == 1450
    assert OptionCode.DOMAIN_NAME not in offer.options


def test_classless_routes_carry_the_default_route() -> None:
    route = ClasslessRoute(destination=IPv4Network("10.0.0.0/8"), gateway=SERVER)
    r = responder(
        PoolOptions(server_ip=SERVER, subnet=OPTIONS.subnet, router=OPTIONS.router, routes=(route,))
    )
    _, offer = answer(r, request(MessageType.DISCOVER))
    routes = offer.options[OptionCode.CLASSLESS_ROUTES]
    assert routes == (
        route,
        ClasslessRoute(destination=IPv4Network("0.0.0.0/0"), gateway=ROUTER),
    )


def test_cached_reply_is_patched_with_each_xid() -> None:
    r = responder()
    _, first = answer(r, request(MessageType.DISCOVER, xid=1))
    _, second = answer(r, request(MessageType.DISCOVER, xid=2, flags=0x8000))
    assert (first.xid, first.flags) == (1, 0)
    assert (second.xid, second.flags) == (2, 0x8000)
    assert first.options == second.options


def test_removed_reservation_is_not_served() -> None:
    r = responder()
    r.remove_reservation(MAC)
    assert r.handle(request(MessageType.DISCOVER)) is None


@pytest.mark.parametrize(
    "data",
    [b"", b"\x01" * 10, b"\x01\x01\x06\x00" + bytes(232) + b"\x00\x00\x00\x00"],
)
def test_malformed_packets_are_counted_and_dropped(data: bytes) -> None:
    r = responder()
    assert r.handle(data) is None
    assert r.counters.malformed == 1


def test_replies_from_other_servers_are_ignored() -> None:
    r = responder()
    offer = r.handle(request(MessageType.DISCOVER))
    assert offer is not None
    assert r.handle(offer.payload) is None
    assert r.counters.ignored == 1


# A search list far longer than a 576-byte reply can carry, even with overload.
LONG_SEARCH = tuple(f"zone{n:02d}.cluster-{n:02d}.datacenter.example.test" for n in range(24))


def test_options_too_big_for_the_client_are_left_out_least_wanted_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = responder(replace(OPTIONS, domain_search=LONG_SEARCH))
    prl = (1, 3, 6, 15, 119, 42)
    for xid in (1, 2):  # the second reply comes from the cache: one warning
        reply, offer = answer(r, request(MessageType.DISCOVER, xid=xid, parameter_request_list=prl))
        assert offer.message_type is MessageType.OFFER and offer.yiaddr == IP
        assert len(reply.payload) <= 576 - 28  # RFC 2132 9.10: IP and UDP headers count
        # NTP (42) went first, then the search list; the rest still fits.
        assert OptionCode.NTP_SERVERS not in offer.options
        assert OptionCode.DOMAIN_SEARCH not in offer.options
        assert offer.options[OptionCode.ROUTER] == (ROUTER,)
        assert offer.options[OptionCode.DNS] == OPTIONS.dns
        assert offer.options[OptionCode.DOMAIN_NAME] == "example.test"
        assert offer.options[OptionCode.SUBNET_MASK] == IPv4Address("255.255.0.0")
        assert offer.options[OptionCode.LEASE_TIME] == 600
        assert (offer.options[OptionCode.RENEWAL_TIME], offer.options[59]) == (300, 525)
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert "left out option(s) 42, 119" in warnings[0] and "198.18.0.0/16" in warnings[0]
    assert r.counters.send_errors == 0

    # What DHCP.md says is always in an OFFER stays, asked for or not.
    _, offer = answer(r, request(MessageType.DISCOVER, parameter_request_list=(119,)))
    assert offer.options[OptionCode.ROUTER] == (ROUTER,)
    assert OptionCode.DOMAIN_SEARCH not in offer.options

    # A client that takes bigger messages (option 57) gets the whole list.
    _, offer = answer(
        r, request(MessageType.DISCOVER, parameter_request_list=prl, max_message_size=1500)
    )
    assert offer.options[OptionCode.DOMAIN_SEARCH] == LONG_SEARCH


def test_a_reply_whose_essential_options_do_not_fit_is_not_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = responder()
    huge_client_id = b"\x00" + bytes(range(255)) * 2  # echoed back (RFC 6842); too big
    assert r.handle(request(MessageType.DISCOVER, client_id=huge_client_id)) is None
    assert r.counters.send_errors == 1
    assert any("cannot build a OFFER" in rec.getMessage() for rec in caplog.records)


def test_a_draining_replica_takes_no_new_clients_but_answers_renewals() -> None:
    """Shutting down (issue 12): DISCOVER and INIT-REBOOT are left to the other
    replicas, so the client's next unicast renewal goes to one that stays; a
    renewal, a rebinding and a DORA begun here are still answered. A reply
    cached before the drain is not replayed."""
    r = responder()
    discover = request(MessageType.DISCOVER)
    assert r.handle(discover) is not None  # cached now
    r.drain()
    assert r.handle(discover) is None
    assert r.handle(request(MessageType.REQUEST, requested_ip=IP)) is None  # INIT-REBOOT
    assert r.counters.ignored == 2
    for ciaddr_request in (
        request(MessageType.REQUEST, ciaddr=IP),  # RENEWING / REBINDING
        request(MessageType.REQUEST, requested_ip=IP, server_id=SERVER),  # SELECTING us
    ):
        reply, ack = answer(r, ciaddr_request)
        assert ack.yiaddr == IP and reply.message_type == MessageType.ACK
