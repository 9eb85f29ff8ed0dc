"""A pool's DHCP server behaviour (RFC 2131/2132; RFC 8415 for DHCPv6) without
I/O: decide the reply; and what the admission webhook decides about IPPools and vmnetcfgs."""

from kvip.serving._admission import (
    FORCE_ANNOTATION,
    Recorded,
    Verdict,
    admission_response,
    forced,
    review_ippool,
    review_vmnetcfg,
)
from kvip.serving._build import CLIENT_PORT, SERVER_PORT
from kvip.serving._build6 import CLIENT_PORT6, SERVER_PORT6, Reply6, client_mac
from kvip.serving._config import PoolOptions, Reservation, server_identity
from kvip.serving._config6 import PoolOptions6, Reservation6, pool_server_duid
from kvip.serving._counters import LATENCY_BUCKETS, Counters, LatencyHistogram
from kvip.serving._eui64 import eui64_mac
from kvip.serving._frame6 import Datagram6, Udp6Fields, build_udp6, parse_udp6, split_udp6
from kvip.serving._history import HISTORY_PER_MAC, History, MacSeen, Outcome, Seen
from kvip.serving._notices import Declined, Notice, Released, mac_bytes
from kvip.serving._pool_config import DEFAULT_INTERFACE, PoolConfig, PoolConfig6, parse_ippool
from kvip.serving._responder import Reply, Responder
from kvip.serving._responder6 import Responder6
from kvip.serving._router_adv import (
    Advertisement,
    build_router_advertisement,
    is_router_solicitation,
    parse_router_advertisement,
)

__all__ = [
    "CLIENT_PORT",
    "CLIENT_PORT6",
    "DEFAULT_INTERFACE",
    "FORCE_ANNOTATION",
    "HISTORY_PER_MAC",
    "LATENCY_BUCKETS",
    "SERVER_PORT",
    "SERVER_PORT6",
    "Advertisement",
    "Counters",
    "Datagram6",
    "Declined",
    "History",
    "LatencyHistogram",
    "MacSeen",
    "Notice",
    "Outcome",
    "PoolConfig",
    "PoolConfig6",
    "PoolOptions",
    "PoolOptions6",
    "Recorded",
    "Released",
    "Reply",
    "Reply6",
    "Reservation",
    "Reservation6",
    "Responder",
    "Responder6",
    "Seen",
    "Udp6Fields",
    "Verdict",
    "admission_response",
    "build_router_advertisement",
    "build_udp6",
    "client_mac",
    "eui64_mac",
    "forced",
    "is_router_solicitation",
    "mac_bytes",
    "parse_ippool",
    "parse_router_advertisement",
    "parse_udp6",
    "pool_server_duid",
    "review_ippool",
    "review_vmnetcfg",
    "server_identity",
    "split_udp6",
]
