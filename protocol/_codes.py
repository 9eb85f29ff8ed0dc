"""Numbers the RFCs assign: BOOTP op codes, DHCP message types, option codes."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["MessageType", "Op", "OptionCode"]


class Op(IntEnum):
    """BOOTP `op` (RFC 951): who sent the message."""

    BOOTREQUEST = 1
    BOOTREPLY = 2


class MessageType(IntEnum):
    """Option 53 values: RFC 2132 9.6, RFC 3203 (FORCERENEW), RFC 4388 (leasequery)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8
    FORCERENEW = 9
    LEASEQUERY = 10
    LEASEUNASSIGNED = 11
    LEASEUNKNOWN = 12
    LEASEACTIVE = 13


class OptionCode(IntEnum):
    """Option codes kvip reads or writes (RFC 2132 unless noted)."""

    PAD = 0
    SUBNET_MASK = 1
    TIME_OFFSET = 2
    ROUTER = 3
    TIME_SERVERS = 4
    NAME_SERVERS = 5
    DNS = 6
    LOG_SERVERS = 7
    HOST_NAME = 12
    DOMAIN_NAME = 15
    ROOT_PATH = 17
    INTERFACE_MTU = 26
    BROADCAST_ADDRESS = 28
    NIS_DOMAIN = 40
    NIS_SERVERS = 41
    NTP_SERVERS = 42
    VENDOR_SPECIFIC = 43
    NETBIOS_NAME_SERVERS = 44
    REQUESTED_IP = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETER_REQUEST_LIST = 55
    MESSAGE = 56
    MAX_MESSAGE_SIZE = 57
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    VENDOR_CLASS_ID = 60
    CLIENT_ID = 61
    TFTP_SERVER_NAME = 66
    BOOTFILE_NAME = 67
    USER_CLASS = 77  # RFC 3004
    RAPID_COMMIT = 80  # RFC 4039
    CLIENT_FQDN = 81  # RFC 4702
    RELAY_AGENT_INFO = 82  # RFC 3046
    CLIENT_ARCH = 93  # RFC 4578
    CLIENT_NDI = 94  # RFC 4578
    CLIENT_UUID = 97  # RFC 4578
    DOMAIN_SEARCH = 119  # RFC 3397
    CLASSLESS_ROUTES = 121  # RFC 3442
    MS_CLASSLESS_ROUTES = 249  # Windows' pre-RFC 3442 code, same encoding
    END = 255
