"""The read-only debug views of the probe server, as JSON (for `kvip why`).

`GET /debug/pools`::

    {"pools": [{"pool": "net1-pool", "network": "default/net1",
                "subnet": "198.18.0.0/16", "subnet6": "2001:db8:16::/64",
                "interface": "eth1", "server_ip": "198.18.0.2", "serving": true,
                "paused": false, "unknown_macs": 3, "dhcp6": "packet"}]}

`server_ip` is the address DHCP answers as (this replica's own address on
the interface when it has one in the subnet, else the IPPool's serverip),
null on an IPv6-only pool; `subnet` and `subnet6` are null for a pool
without that family;
`unknown_macs` the MACs without a reservation among those heard lately;
`dhcp6` how a dual-stack pool reads DHCPv6 requests: "packet" (with each
frame's MAC), "udp" (no CAP_NET_RAW: clients known only by a DUID-LL(T) or
an EUI-64 link-local address), null when it serves no DHCPv6.

`GET /debug/mac/52:54:00:12:34:56` (any case, ':' or '-')::

    {"mac": "52:54:00:12:34:56",
     "pools": [{"pool": "net1-pool", "network": "default/net1",
                "server_ip": "198.18.0.2", "serving": true,
                "reservation": {"owner": "default/vm1 [52:54:00:12:34:56]",
                                "ip": "198.18.0.10", "ip6": null, "hostname": "vm1",
                                "serving": true, "declined": false},
                "unknown": false, "count": 12,
                "history": [{"time": "2026-12-02T07:30:00.123+00:00",
                             "received": "DISCOVER", "xid": "0x3903f326",
                             "answer": "OFFER", "ip": "198.18.0.10",
                             "reason": null}]}]}

One entry per pool that has a reservation for the MAC or heard from it lately;
`reservation` is null when the pool only heard from it; its `ip` and `ip6`
are null for a family the pool does not serve it. `history` holds the last
few messages of DHCP and DHCPv6 together, oldest first: `received` is the
message type (DISCOVER..., or SOLICIT... for DHCPv6; "?" for a malformed
packet), `answer` the reply's type (OFFER, ACK, NAK; ADVERTISE, REPLY) or null
when the pool stayed silent, `ip` the address answered (or declined,
released), `reason` why there was no answer (unknown_mac, another_server,
draining, declined_address, invalid, ...: kvip/serving/_history.py) or a NAK's
message. `count`
is the number of messages heard from the MAC since it was first remembered;
`unknown` is true when the MAC was last heard while the pool had no
reservation to serve for it (none, or one not yet recorded: `"serving":
false`). A MAC no pool knows gets `"pools": []`; one that is not a MAC, 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from kvip.actors import PoolActor
from kvip.serving import Seen


def pools_view(pools: Mapping[str, PoolActor]) -> dict[str, Any]:
    return {"pools": [_pool(actor) for _, actor in sorted(pools.items())]}


def _pool(actor: PoolActor) -> dict[str, Any]:
    config = actor.config
    mode = actor.dhcp6_mode
    return {
        "pool": actor.name,
        "network": config.network,
        "subnet": str(config.spec.subnet) if config.spec is not None else None,
        "subnet6": str(config.v6.spec.subnet) if config.v6 is not None else None,
        "interface": config.interface,
        "server_ip": _server_ip(actor),
        "serving": actor.serving,
        "paused": config.paused,
        "unknown_macs": actor.figures().unknown_macs,
        "dhcp6": None if mode is None else mode.value,
    }


def _server_ip(actor: PoolActor) -> str | None:
    """The address DHCP answers as; None on an IPv6-only pool."""
    responder = actor.book.responder
    return str(responder.options.server_ip) if responder is not None else None


def _text(ip: IPv4Address | IPv6Address | None) -> str | None:
    return str(ip) if ip is not None else None


def normal_mac(text: str) -> str | None:
    """'52:54:00:aa:bb:cc' from any case with ':' or '-', None if not a MAC."""
    digits = text.replace(":", "").replace("-", "").lower()
    if len(digits) != 12 or any(c not in "0123456789abcdef" for c in digits):
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def mac_view(pools: Mapping[str, PoolActor], mac: str) -> dict[str, Any]:
    found = []
    for name, actor in sorted(pools.items()):
        nic = actor.nics.get(mac)
        heard, declined = actor.heard_from(mac)
        if nic is None and heard is None:
            continue
        count, seen, unknown = heard if heard is not None else (0, (), nic is None)
        reservation = None
        if nic is not None:
            reservation = {"owner": nic.owner, "ip": _text(nic.ip), "ip6": _text(nic.ip6),
                           "hostname": nic.hostname, "serving": nic.serving,
                           "declined": declined}  # fmt: skip
        found.append(
            {
                "pool": name,
                "network": actor.config.network,
                "server_ip": _server_ip(actor),
                "serving": actor.serving,
                "reservation": reservation,
                "unknown": unknown,
                "count": count,
                "history": [_seen(s) for s in seen],
            }
        )
    return {"mac": mac, "pools": found}


def _seen(seen: Seen) -> dict[str, Any]:
    when, _, kind, xid, outcome = seen
    return {
        "time": datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds"),
        "received": kind,
        "xid": f"0x{xid.hex()}",
        "answer": outcome.answer,
        "ip": outcome.ip,
        "reason": outcome.why,
    }
