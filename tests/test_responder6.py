"""RFC 8415 behaviour of a pool for static reservations, driven without sockets
(the Responder6): every message type and state."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv6Address

import pytest

import kvip.serving
from kvip.serving import (
    Declined,
    Released,
    Reservation6,
)
from protocol.dhcp6 import (
    IANA,
    IAPD,
    IATA,
    ClientId,
    DuidLL,
    IAAddress,
    IAPrefix,
    Message,
    MessageType,
    OptionRequest,
    Preference,
    RapidCommit,
    ServerId,
    Status,
    StatusCode,
    decode,
)
from tests.lab.responder6 import (
    ANOTHER_SERVER,
    CLIENT,
    CONFIGURATION,
    IP,
    MAC,
    NAMING_TYPES,
    OPTIONS,
    OTHER_IP,
    SERVER,
    UNKNOWN_MAC,
    addresses,
    answer,
    ask,
    client,
    holds_reservation,
    responder,
    status,
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
