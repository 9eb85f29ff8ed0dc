"""Numbers RFC 8415 (and the RFCs it builds on) assign: message types, option
codes, status codes, DUID types."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["DuidType", "MessageType", "OptionCode", "Status"]


class MessageType(IntEnum):
    """msg-type (RFC 8415 7.3). Types past 13 (leasequery, DHCPv4-over-DHCPv6, ...)
    are not read: `decode` refuses them."""

    SOLICIT = 1
    ADVERTISE = 2
    REQUEST = 3
    CONFIRM = 4
    RENEW = 5
    REBIND = 6
    REPLY = 7
    RELEASE = 8
    DECLINE = 9
    RECONFIGURE = 10
    INFORMATION_REQUEST = 11
    RELAY_FORW = 12
    RELAY_REPL = 13


RELAY_TYPES = frozenset({MessageType.RELAY_FORW, MessageType.RELAY_REPL})


class OptionCode(IntEnum):
    """Option codes (RFC 8415 21 unless noted). The codec gives a typed value to
    those listed in `protocol.dhcp6.Option`; the others stay `RawOption`."""

    CLIENT_ID = 1
    SERVER_ID = 2
    IA_NA = 3
    IA_TA = 4
    IA_ADDRESS = 5
    ORO = 6
    PREFERENCE = 7
    ELAPSED_TIME = 8
    RELAY_MESSAGE = 9
    AUTH = 11
    UNICAST = 12
    STATUS_CODE = 13
    RAPID_COMMIT = 14
    USER_CLASS = 15
    VENDOR_CLASS = 16
    VENDOR_OPTS = 17
    INTERFACE_ID = 18
    RECONF_MSG = 19
    RECONF_ACCEPT = 20
    DNS_SERVERS = 23  # RFC 3646
    DOMAIN_LIST = 24  # RFC 3646
    IA_PD = 25
    IA_PREFIX = 26
    INFORMATION_REFRESH_TIME = 32
    REMOTE_ID = 37  # RFC 4649
    CLIENT_FQDN = 39  # RFC 4704
    NTP_SERVER = 56  # RFC 5908
    CLIENT_LINKLAYER_ADDR = 79  # RFC 6939
    SOL_MAX_RT = 82
    INF_MAX_RT = 83


class Status(IntEnum):
    """Status codes of option 13 (RFC 8415 21.13)."""

    SUCCESS = 0
    UNSPEC_FAIL = 1
    NO_ADDRS_AVAIL = 2
    NO_BINDING = 3
    NOT_ON_LINK = 4
    USE_MULTICAST = 5
    NO_PREFIX_AVAIL = 6


class DuidType(IntEnum):
    """DUID types (RFC 8415 11.1, RFC 6355 for UUID)."""

    LLT = 1
    EN = 2
    LL = 3
    UUID = 4
