"""A pool's DHCP server behaviour (RFC 2131/2132) without I/O: decide the reply."""

from kvip.serving._build import CLIENT_PORT, SERVER_PORT
from kvip.serving._config import PoolOptions, Reservation, server_identity
from kvip.serving._counters import LATENCY_BUCKETS, Counters, LatencyHistogram
from kvip.serving._history import History, MacSeen, Outcome, Seen
from kvip.serving._notices import Declined, Notice, Released, mac_bytes
from kvip.serving._pool_config import DEFAULT_INTERFACE, PoolConfig, parse_ippool
from kvip.serving._responder import Reply, Responder

__all__ = [
    "CLIENT_PORT",
    "DEFAULT_INTERFACE",
    "LATENCY_BUCKETS",
    "SERVER_PORT",
    "Counters",
    "Declined",
    "History",
    "LatencyHistogram",
    "MacSeen",
    "Notice",
    "Outcome",
    "PoolConfig",
    "PoolOptions",
    "Released",
    "Reply",
    "Reservation",
    "Responder",
    "Seen",
    "mac_bytes",
    "parse_ippool",
    "server_identity",
]
