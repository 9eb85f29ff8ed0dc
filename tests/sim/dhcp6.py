"""How a simulation talks DHCPv6, and what it checks of the answers (a mixin of
driver.Sim, beside checks.py's DHCP half).

A packet goes to the pool's Responder6 the way PacketThread6 hands it over:
under the actor's lock, the notices (DECLINE, RELEASE) posted to the actor.
A NIC names itself by a DUID-LL of its MAC, or, as systemd-networkd and dhcpcd
may, by a DUID-EN while the frame's source MAC says who it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv6Address

import trio

from kvip.actors import Controller, PoolActor
from kvip.k8s import VMNETCFGS
from kvip.serving import Reply6, pool_server_duid
from protocol.dhcp6 import (
    IANA,
    ClientId,
    DuidEN,
    DuidLL,
    IAAddress,
    Message,
    MessageType,
    Option,
    ServerId,
    decode,
    encode,
)
from tests.chaos.invariants import Observation, dhcp6_candidates
from tests.chaos.model import World
from tests.sim.apidouble import ApiDouble

#: Where a client's packets come from: its link-local address, port 546.
SOURCE = ("fe80::5054:ff:fe00:1", 546, 0, 1)
#: The enterprise number of the DUID-EN clients (RFC 8415 11.3's example).
ENTERPRISE = 9
IAID = 1


def deliver6(actor: PoolActor, packet: bytes, source_mac: bytes | None) -> Reply6 | None:
    """What PacketThread6.run does with one packet (None: the pool is IPv4-only)."""
    book6 = actor.book.v6
    if book6 is None:
        return None
    with actor._lock:
        reply = book6.responder.handle(packet, trio.current_time(), SOURCE, source_mac)
        notices = bool(book6.responder.notices)
    if notices:
        trio.lowlevel.current_trio_token().run_sync_soon(actor._post_notices)
    return reply


def offered(reply: Reply6 | None) -> set[str]:
    """The IPv6 addresses an ADVERTISE or REPLY hands out (in its IA_NAs)."""
    if reply is None or reply.message_type not in (MessageType.ADVERTISE, MessageType.REPLY):
        return set()
    message = decode(reply.payload)
    assert isinstance(message, Message)
    return {
        str(address.address)
        for ia in message.options
        if isinstance(ia, IANA)
        for address in ia.options
        if isinstance(address, IAAddress) and address.valid_lifetime > 0
    }


@dataclass(frozen=True, slots=True)
class Declined6:
    """A DECLINE the leader's pool took: until the reset, that leader must not
    hand the address to the NIC again."""

    controller: Controller = field(repr=False)
    network: str
    mac: str
    ip6: str


class Checks6:
    """The DHCPv6 half of driver.Sim's checks: it reads what the Sim keeps."""

    double: ApiDouble
    world: World
    violations: list[str]
    controller: Controller | None
    follower: Controller | None
    dhcp_checks: int
    declined6: list[Declined6]
    _macs: int

    def _actor(self, network: str, replica: Controller | None = None) -> PoolActor | None:
        raise NotImplementedError

    def _recorded6(self, network: str) -> dict[str, set[str]]:
        raise NotImplementedError

    def send6(
        self, actor: PoolActor, mac: str, kind: MessageType, ip6: str | None = None, *,
        by_source: bool = False,
    ) -> Reply6 | None:  # fmt: skip
        """A client's packet; `by_source`: it names itself by a DUID-EN, and the
        pool knows it by the frame's source MAC."""
        self.dhcp_checks += 1
        hardware = bytes.fromhex(mac.replace(":", ""))
        duid = DuidEN(ENTERPRISE, hardware) if by_source else DuidLL(1, hardware)
        options: list[Option] = [ClientId(duid)]
        if kind != MessageType.SOLICIT:
            options.append(ServerId(pool_server_duid(actor.config.name)))
        held = (IAAddress(address=IPv6Address(ip6)),) if ip6 is not None else ()
        options.append(IANA(iaid=IAID, options=held))
        message = Message(msg_type=kind, transaction_id=self.dhcp_checks, options=tuple(options))
        return deliver6(actor, encode(message), hardware if by_source else None)

    def _check_answer6(self, network: str, mac: str, reply: Reply6 | None, *,
                       settled: bool) -> None:  # fmt: skip
        """Any address handed out is the NIC's recorded one (while kvip catches
        up, at least nobody else's)."""
        recorded = self._recorded6(network)
        for ip6 in sorted(offered(reply) - recorded.get(mac, set())):
            others = sorted(m for m, ips in recorded.items() if ip6 in ips)
            if others or settled:
                self.violations.append(f"dhcp6: {network} answered {mac} with {ip6}, "
                                       f"recorded for {others or 'nobody'}")  # fmt: skip

    def _declines6_honoured(self) -> None:
        """A DECLINEd IPv6 address that the vmnetcfg status shows declined is not
        handed to its NIC again by the leader that took the DECLINE while it
        still leads (before the reset). One the pool took but the status never
        showed (the pool crashed before it told the controller) is lost, as
        with DHCP."""
        shown = self._shown_declined6()
        for declined in self.declined6:
            if declined.controller is not self.controller:
                continue  # kept in the leader's memory only
            if (declined.network, declined.mac, declined.ip6) not in shown:
                continue
            if declined.ip6 not in self._recorded6(declined.network).get(declined.mac, set()):
                continue  # the NIC moved on
            actor = self._actor(declined.network)
            if actor is None:
                continue
            reply = self.send6(actor, declined.mac, MessageType.SOLICIT)
            if declined.ip6 in offered(reply):
                self.violations.append(
                    f"decline6: the leader offers {declined.ip6} to {declined.mac}, which "
                    "declined it (settled)"
                )

    def _shown_declined6(self) -> set[tuple[str, str, str]]:
        """(network, MAC, IPv6 address) of each decline a vmnetcfg status shows."""
        shown = set()
        for body in self.double.stored(VMNETCFGS):
            for entry in (body.get("status") or {}).get("networkconfig") or []:
                network = str(entry.get("networkname")).rpartition("/")[2]
                message = str(entry.get("message", ""))
                ip6, _, rest = message.partition(" was declined by ")
                if rest:
                    shown.add((network, str(entry.get("macaddress", "")).lower(), ip6))
        return shown

    def _final_dhcp6(self, obs: Observation, replica: Controller | None, role: str) -> None:
        """Every NIC with both addresses in range (on an IPv6-only pool: its IPv6
        one) gets exactly its IPv6 one, by its DUID-LL and by its frame's MAC;
        nobody else gets one."""
        served = set()
        for _, network, mac, ip6 in dhcp6_candidates(self.world, obs):
            served.add(mac)
            actor = self._actor(network, replica)
            if actor is None:
                self.violations.append(f"dhcp6: no running pool for {network} in the {role}")
                continue
            for by_source in (False, True):
                got = offered(self.send6(actor, mac, MessageType.SOLICIT, by_source=by_source))
                if got != {ip6}:
                    how = "its frame's MAC" if by_source else "its DUID-LL"
                    self.violations.append(f"dhcp6: {mac} on {network} (by {how}) got "
                                           f"{sorted(got)}, not {ip6} from the {role} "
                                           "(settled)")  # fmt: skip
        for mac_number in range(1, self._macs + 1):
            mac = f"52:54:00:5e:{mac_number >> 8:02x}:{mac_number % 256:02x}"
            if mac in served:
                continue
            for network in self.world.pools:
                actor = self._actor(network, replica)
                if actor is not None:
                    reply = self.send6(actor, mac, MessageType.SOLICIT)
                    self._check_answer6(network, mac, reply, settled=True)
