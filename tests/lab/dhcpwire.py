"""Just enough DHCP reading for the lab: the option walk, the message type, and
the corpus safety check. Not kvip's codec (that is ``protocol/``): this stays
independent so the corpus and the lab do not depend on the code they test.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from tests.lab.netlab import LAB_NETWORK as LAB

MESSAGE_TYPES = {
    1: "discover",
    2: "offer",
    3: "request",
    4: "decline",
    5: "ack",
    6: "nak",
    7: "release",
    8: "inform",
}
MAGIC_COOKIE = bytes([99, 130, 83, 99])  # RFC 2131 3
# Options whose value is a list of IPv4 addresses that must stay inside the lab.
ADDRESS_OPTIONS = {3, 6, 28, 50, 54}


def options(payload: bytes) -> Iterator[tuple[int, bytes]]:
    """(code, value) of the options field; also of file/sname when overloaded
    (RFC 2132 9.3). Stops quietly at anything malformed."""
    areas = [payload[240:]]
    overload = 0
    while areas:
        data, i = areas.pop(0), 0
        while i < len(data):
            code = data[i]
            if code == 255:
                break
            if code == 0:
                i += 1
                continue
            if i + 1 >= len(data) or i + 2 + data[i + 1] > len(data):
                break
            value = data[i + 2 : i + 2 + data[i + 1]]
            if code == 52 and value:
                overload = value[0]
            yield code, value
            i += 2 + data[i + 1]
        if overload:
            areas += [payload[108:236]] if overload & 1 else []
            areas += [payload[44:108]] if overload & 2 else []
            overload = 0


def message_kind(payload: bytes) -> str | None:
    """``discover`` .. ``inform``, ``bootp`` without option 53, None if not DHCP."""
    if len(payload) < 240 or payload[236:240] != MAGIC_COOKIE or payload[0] not in (1, 2):
        return None
    for code, value in options(payload):
        if code == 53 and len(value) == 1:
            return MESSAGE_TYPES.get(value[0], f"type{value[0]}")
    return "bootp"


def unsafe(payload: bytes, *, hostname: bytes) -> str | None:
    """Why ``payload`` must not enter the corpus, or None."""
    if payload[1] == 1 and payload[2] == 6 and payload[28:31] != b"\x52\x54\x00":
        return f"chaddr {payload[28:34].hex(':')} is not 52:54:00"
    for start in (12, 16, 20, 24):  # ciaddr, yiaddr, siaddr, giaddr
        address = ipaddress.IPv4Address(payload[start : start + 4])
        if int(address) and address not in LAB:
            return f"header address {address} outside {LAB}"
    for code, value in options(payload):
        if code in ADDRESS_OPTIONS:
            for k in range(0, len(value) - 3, 4):
                address = ipaddress.IPv4Address(value[k : k + 4])
                if address not in LAB and int(address) not in (0, 0xFFFFFFFF):
                    return f"option {code} address {address} outside {LAB}"
        # Host name (12) and client FQDN (81, name after 3 bytes of flags and rcodes).
        name = value if code == 12 else value[3:] if code == 81 else b""
        if hostname and name.lower().split(b".")[0] == hostname.lower():
            return f"option {code} carries this machine's host name"
    # A short host name ("vm") also occurs by chance; only a distinctive one is searched.
    if len(hostname) >= 6 and hostname in payload:
        return "contains this machine's host name"
    return None
