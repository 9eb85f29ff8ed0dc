"""Hypothesis strategies for DHCPv4 messages, option by option.

Values are generated in the form `decode` returns (tuples, no trailing NULs,
no trailing dots), so that `decode(encode(m)) == m` is the property to test.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from hypothesis import strategies as st

from protocol import ClasslessRoute, Message, MessageType, Op, Options, RelayAgentInformation
from protocol._values import ADDRESS, ADDRESS_LIST, TEXT, UINT16, UINT32

__all__ = [
    "addresses",
    "domain_lists",
    "messages",
    "option_codes",
    "option_values",
    "options",
    "routes",
]

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
addresses = st.builds(IPv4Address, u32)

# Every code a message may carry; 0, 52 and 255 are framing the codec owns.
option_codes = st.integers(1, 254).filter(lambda code: code != 52)


def _no_trailing_nul(data: bytes) -> bytes:
    return data.rstrip(b"\0")


@st.composite
def routes(draw: st.DrawFn) -> ClasslessRoute:
    width = draw(st.integers(0, 32))
    prefix = draw(u32) & ((0xFFFFFFFF << (32 - width)) & 0xFFFFFFFF)
    return ClasslessRoute(IPv4Network((prefix, width)), draw(addresses))


# Labels: any ASCII but the dot, 1..63 bytes (RFC 1035 2.3.4).
labels = st.text(st.characters(max_codepoint=0x7F, exclude_characters="."), min_size=1, max_size=12)


def _fits(name: str) -> bool:
    return len(name) + 2 <= 255 if name else True


@st.composite
def domain_lists(draw: st.DrawFn) -> tuple[str, ...]:
    """Names over a small pool of labels, so that suffixes repeat and compress."""
    pool = draw(st.lists(labels, min_size=1, max_size=5))
    names = draw(
        st.lists(
            st.lists(st.sampled_from(pool), max_size=5).map(".".join).filter(_fits), max_size=4
        )
    )
    return tuple(names)


relay_agent_info = st.builds(
    RelayAgentInformation,
    st.lists(st.tuples(u8, st.binary(max_size=12)), max_size=3).map(tuple),
)
texts = st.text(st.characters(codec="utf-8"), max_size=24).filter(
    lambda text: not text.endswith("\0")
)


def option_values(code: int) -> st.SearchStrategy[object]:
    """Values of option `code`, typed as `Options` reads them back."""
    if code in ADDRESS:
        return addresses
    if code in ADDRESS_LIST:
        return st.lists(addresses, max_size=4).map(tuple)
    if code in TEXT:
        return texts
    if code in UINT16:
        return u16
    if code in UINT32:
        return u32
    if code == 53:
        return st.sampled_from(MessageType) | st.integers(14, 255) | st.just(0)
    if code == 55:
        return st.lists(u8, max_size=24).map(tuple)
    if code == 80:
        return st.just(b"")
    if code == 82:
        return relay_agent_info
    if code == 119:
        return domain_lists()
    if code in (121, 249):
        return st.lists(routes(), max_size=4).map(tuple)
    # Unknown codes are bytes; long ones (RFC 3396) have their own tests, as
    # hypothesis generates few large values when they share a message.
    return st.binary(max_size=24)


@st.composite
def options(draw: st.DrawFn, *, max_options: int = 10) -> Options:
    favourites = st.sampled_from([1, 3, 6, 12, 15, 50, 51, 53, 54, 55, 57, 61, 80, 82, 119, 121])
    codes = draw(st.lists(favourites | option_codes, unique=True, max_size=max_options))
    return Options.from_pairs((code, draw(option_values(code))) for code in codes)


@st.composite
def messages(draw: st.DrawFn, *, max_options: int = 10) -> Message:
    return Message(
        op=draw(st.sampled_from(Op)),
        xid=draw(u32),
        chaddr=draw(st.binary(max_size=16)),
        htype=draw(u8),
        hops=draw(u8),
        secs=draw(u16),
        flags=draw(u16),
        ciaddr=draw(addresses),
        yiaddr=draw(addresses),
        siaddr=draw(addresses),
        giaddr=draw(addresses),
        sname=draw(st.just(b"") | st.binary(max_size=64).map(_no_trailing_nul)),
        file=draw(st.just(b"") | st.binary(max_size=128).map(_no_trailing_nul)),
        options=draw(options(max_options=max_options)),
    )
