"""Hypothesis strategies for DHCPv6 messages (protocol.dhcp6), option by option.

Values are generated in the form `decode` returns (tuples, names without a
trailing dot, no RawOption under a typed code), so that `decode(encode(m)) == m`
is the property to test.
"""

from __future__ import annotations

from ipaddress import IPv6Address
from uuid import UUID

from hypothesis import strategies as st

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
    ElapsedTime,
    IAAddress,
    IAPrefix,
    InterfaceId,
    Message,
    MessageType,
    NtpMulticastAddress,
    NtpServer,
    NtpServerAddress,
    NtpServerFqdn,
    Option,
    OptionRequest,
    Preference,
    RapidCommit,
    RawOption,
    RelayMessage,
    RelayMessageOption,
    ServerId,
    StatusCode,
    UnknownDuid,
)
from protocol.dhcp6._codec import TYPED_CODES

__all__ = ["any_messages", "duids", "messages", "names", "options", "relay_messages"]

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
addresses = st.builds(IPv6Address, st.integers(0, 2**128 - 1))
small_bytes = st.binary(max_size=20)

duids: st.SearchStrategy[Duid] = st.one_of(
    st.builds(DuidLLT, u16, u32, small_bytes),
    st.builds(DuidEN, u32, small_bytes),
    st.builds(DuidLL, u16, small_bytes),
    st.builds(DuidUUID, st.builds(UUID, bytes=st.binary(min_size=16, max_size=16))),
    st.builds(UnknownDuid, u16.filter(lambda kind: not 1 <= kind <= 4), small_bytes),
)

# Labels: any ASCII but the dot, 1..63 bytes (RFC 1035 2.3.4).
labels = st.text(st.characters(max_codepoint=0x7F, exclude_characters="."), min_size=1, max_size=12)
names = st.lists(labels, max_size=5).map(".".join)

# Raw options: codes the codec does not type (and a few small ones, as sub-options).
raw_codes = u16.filter(lambda code: code not in TYPED_CODES)
raw_options = st.builds(RawOption, raw_codes, small_bytes)
ntp_suboptions = st.one_of(
    st.builds(NtpServerAddress, addresses),
    st.builds(NtpMulticastAddress, addresses),
    st.builds(NtpServerFqdn, names),
    st.builds(RawOption, u16.filter(lambda code: not 1 <= code <= 3), small_bytes),
)

leaf_options: st.SearchStrategy[Option] = st.one_of(
    st.builds(ClientId, duids),
    st.builds(ServerId, duids),
    st.builds(OptionRequest, st.lists(u16, max_size=8).map(tuple)),
    st.builds(Preference, u8),
    st.builds(ElapsedTime, u16),
    st.builds(StatusCode, u16, st.text(max_size=20)),
    st.just(RapidCommit()),
    st.builds(InterfaceId, small_bytes),
    st.builds(DnsServers, st.lists(addresses, max_size=3).map(tuple)),
    st.builds(DomainList, st.lists(names, max_size=3).map(tuple)),
    st.builds(NtpServer, st.lists(ntp_suboptions, max_size=3).map(tuple)),
    st.builds(ClientLinkLayerAddress, u16, small_bytes),
    raw_options,
)


def _containers(inner: st.SearchStrategy[Option]) -> st.SearchStrategy[Option]:
    nested = st.lists(inner, max_size=3).map(tuple)
    return st.one_of(
        st.builds(IANA, iaid=u32, t1=u32, t2=u32, options=nested),
        st.builds(IATA, iaid=u32, options=nested),
        st.builds(IAPD, iaid=u32, t1=u32, t2=u32, options=nested),
        st.builds(
            IAAddress,
            address=addresses,
            preferred_lifetime=u32,
            valid_lifetime=u32,
            options=nested,
        ),
        st.builds(
            IAPrefix,
            preferred_lifetime=u32,
            valid_lifetime=u32,
            prefix_length=st.integers(0, 128),
            prefix=addresses,
            options=nested,
        ),
    )


options: st.SearchStrategy[Option] = st.recursive(leaf_options, _containers, max_leaves=8)

client_server_types = st.sampled_from(
    [kind for kind in MessageType if kind not in (MessageType.RELAY_FORW, MessageType.RELAY_REPL)]
)


def messages(max_options: int = 8) -> st.SearchStrategy[Message]:
    return st.builds(
        Message,
        msg_type=client_server_types,
        transaction_id=st.integers(0, 2**24 - 1),
        options=st.lists(options, max_size=max_options).map(tuple),
    )


def _relay(inner: st.SearchStrategy[Message | RelayMessage]) -> st.SearchStrategy[RelayMessage]:
    return st.builds(
        RelayMessage,
        msg_type=st.sampled_from([MessageType.RELAY_FORW, MessageType.RELAY_REPL]),
        hop_count=u8,
        link_address=addresses,
        peer_address=addresses,
        options=st.tuples(
            st.lists(options, max_size=3),
            inner.map(RelayMessageOption),
            st.lists(options, max_size=2),
        ).map(lambda parts: (*parts[0], parts[1], *parts[2])),
    )


def relay_messages() -> st.SearchStrategy[RelayMessage]:
    """One to three relay layers around a client message."""
    return _relay(st.recursive(messages(4), _relay, max_leaves=3))


def any_messages() -> st.SearchStrategy[Message | RelayMessage]:
    return messages() | relay_messages()
