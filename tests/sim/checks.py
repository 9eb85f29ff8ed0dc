"""What a simulation checks, and how it talks DHCP (a mixin of driver.Sim).

After every step, the invariants that hold while kvip catches up (the
chaos Tracker); once kvip has settled, all of tests/chaos/invariants.py and
that every pool answers DHCP exactly as the vmnetcfgs record. A DHCP packet
goes to the pool's Responder the way the packet thread hands it over.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

import trio

from kvip.actors import Controller, PoolActor
from kvip.k8s import IPPOOLS, RESET_ANNOTATION, VMNETCFGS, NotFound
from kvip.serving import Reply
from protocol import Message, MessageType, Op, OptionCode, Options, decode, encode
from tests.chaos.invariants import (
    CfgView,
    Observation,
    PoolView,
    Tracker,
    check_settled,
    dhcp_candidates,
)
from tests.chaos.model import World
from tests.sim.apidouble import ApiDouble

NAMESPACE = "sim"
#: Settled: no write and nothing queued for this long (longer than any backoff).
QUIET = 70.0
#: Not settled after this long (mock time): a hang or an endless retry.
SETTLE_LIMIT = 900.0


def deliver(actor: PoolActor, packet: bytes) -> Reply | None:
    """What the packet thread does with one packet (PacketThread.run; None: an
    IPv6-only pool, which has no DHCP socket and so no packet thread)."""
    responder = actor.book.responder
    if responder is None:
        return None
    with actor._lock:
        reply = responder.handle(packet)
        notices = bool(responder.notices)
    if notices:
        trio.lowlevel.current_trio_token().run_sync_soon(actor._post_notices)
    return reply


class Checks:
    """The checking half of driver.Sim: it reads what the Sim keeps."""

    double: ApiDouble
    world: World
    tracker: Tracker
    violations: list[str]
    log: list[str]
    absent: set[str]
    declined: set[str]
    controller: Controller | None
    follower: Controller | None
    dhcp_checks: int
    _macs: int
    #: The DHCPv6 half (dhcp6.Checks6, after this class in driver.Sim's bases).
    _declines6_honoured: Callable[[], None]
    _final_dhcp6: Callable[[Observation, Controller | None, str], None]

    def _actor(self, network: str, replica: Controller | None = None) -> PoolActor | None:
        raise NotImplementedError

    def _create_pool(self, network: str) -> None:
        raise NotImplementedError

    def _recorded(self, network: str, *, v6: bool = False) -> dict[str, set[str]]:
        """MAC -> the addresses (`v6`: the IPv6 ones) recorded for it on `network`,
        in every vmnetcfg."""
        key = self.world.network_key(network)
        found: dict[str, set[str]] = {}
        for view in self._observation(pools=False).cfgs.values():
            for record in view.records:
                ip = record.ip6 if v6 else record.ip
                if record.network == key and ip:
                    found.setdefault(record.mac, set()).add(ip)
        return found

    def _recorded6(self, network: str) -> dict[str, set[str]]:
        return self._recorded(network, v6=True)

    def send(
        self, actor: PoolActor, mac: str, kind: MessageType, ip: IPv4Address, server: IPv4Address
    ) -> Reply | None:
        values: dict[int, Any] = {OptionCode.MESSAGE_TYPE: kind}
        ciaddr = IPv4Address(0)
        if kind in (MessageType.REQUEST, MessageType.DECLINE):
            values[OptionCode.REQUESTED_IP] = ip
        if kind in (MessageType.DECLINE, MessageType.RELEASE):
            values[OptionCode.SERVER_ID] = server
        if kind == MessageType.RELEASE:
            ciaddr = ip
        self.dhcp_checks += 1
        chaddr = bytes.fromhex(mac.replace(":", ""))
        message = Message(
            op=Op.BOOTREQUEST,
            xid=self.dhcp_checks,
            chaddr=chaddr,
            ciaddr=ciaddr,
            options=Options(values),
        )
        return deliver(actor, encode(message))

    def _check_answer(self, network: str, mac: str, reply: Reply | None, *, settled: bool) -> None:
        if reply is None or reply.message_type not in (MessageType.OFFER, MessageType.ACK):
            return
        offered = str(decode(reply.payload).yiaddr)
        recorded = self._recorded(network)
        if offered in recorded.get(mac, set()):
            return
        others = sorted(m for m, ips in recorded.items() if offered in ips)
        if others or settled:
            self.violations.append(
                f"dhcp: {network} answered {mac} with {offered}, recorded for {others or 'nobody'}"
            )

    # -- checking -----------------------------------------------------------------------

    def _observation(self, *, pools: bool = True) -> Observation:
        cfgs = {
            str(body["metadata"]["name"]): CfgView.parse(body)
            for body in self.double.stored(VMNETCFGS)
            if body["metadata"].get("namespace") == NAMESPACE
        }
        views = {}
        if pools:
            stored = {str(b["metadata"]["name"]): b for b in self.double.stored(IPPOOLS)}
            views = {
                net: PoolView.parse(stored[pool.name])
                for net, pool in self.world.pools.items()
                if pool.name in stored
            }
        return Observation(cfgs, views)

    def _midway(self) -> None:
        for violation in self.tracker.observe(self.world, self._observation(pools=False)):
            self.violations.append(f"{violation} (after step {len(self.log)})")

    async def settle(self) -> bool:
        """Let mock time run until nothing is written or queued for QUIET seconds."""
        start = last_change = trio.current_time()
        revision = -1
        while True:
            await trio.sleep(1.0)
            now, c = trio.current_time(), self.controller
            busy = any(
                r is None or not r.ready.is_set() or not r.queue.idle for r in (c, self.follower)
            )
            if busy or self.double.revision != revision:
                revision, last_change = self.double.revision, now
            elif now - last_change >= QUIET:
                return True
            if now - start > SETTLE_LIMIT:
                queued = len(c.queue) if c is not None else "no controller"
                self.violations.append(
                    f"settle: not settled after {SETTLE_LIMIT:.0f} s (queue: {queued}, "
                    f"ready: {c is not None and c.ready.is_set()})"
                )
                return False

    async def finish(self) -> None:
        """Undo what a user or operator would undo, settle, check everything."""
        self.log.append("-- finish: faults cleared, pools back, declines reset")
        self.double.faults.clear()
        for network in sorted(self.absent):
            self._create_pool(network)
        if not await self.settle():
            return
        self._declines_honoured()
        self._declines6_honoured()
        for name in sorted(self.declined & self.world.vms.keys()):
            annotations = {RESET_ANNOTATION: "sim"}
            with contextlib.suppress(NotFound):  # a VM that has no NIC left has none
                self.double.patch(
                    VMNETCFGS, name, {"metadata": {"annotations": annotations}}, namespace=NAMESPACE
                )
        if self.declined and not await self.settle():
            return
        obs = self._observation()
        for violation in self.tracker.observe(self.world, obs) + check_settled(self.world, obs):
            self.violations.append(f"{violation} (settled)")
        self._final_dhcp(obs, self.controller, "leader")
        self._final_dhcp(obs, self.follower, "follower")
        self._final_dhcp6(obs, self.controller, "leader")
        self._final_dhcp6(obs, self.follower, "follower")

    def _declines_honoured(self) -> None:
        """A decline the vmnetcfg status records is honoured by every replica: no
        OFFER for that NIC from the leader or the follower (before the reset)."""
        networks = {self.world.network_key(n): n for n in self.world.pools}
        for body in self.double.stored(VMNETCFGS):
            for entry in (body.get("status") or {}).get("networkconfig") or []:
                network = networks.get(str(entry.get("networkname")))
                if "declined" not in entry or network is None or ":" in entry["declined"]:
                    continue  # (an IPv6 address: the DHCPv6 checks, dhcp6.py)
                pool = self.world.pools[network]
                for replica, role in ((self.controller, "leader"), (self.follower, "follower")):
                    actor = self._actor(network, replica)
                    if actor is None:
                        continue
                    ip = IPv4Address(entry["declined"])
                    reply = self.send(actor, entry["macaddress"], MessageType.DISCOVER, ip,
                                      pool.server)  # fmt: skip
                    if reply is not None and reply.message_type == MessageType.OFFER:
                        self.violations.append(
                            f"decline: the {role} offers {ip} to {entry['macaddress']}, "
                            "declined in its vmnetcfg status (settled)"
                        )

    def _final_dhcp(self, obs: Observation, replica: Controller | None, role: str) -> None:
        """Every NIC with an address in range gets exactly it; nobody else gets one:
        from the leader, and from the follower alike. An IPv6-only pool answers
        no DHCP at all: it has no IPv4 half, so it opens no DHCP socket."""
        for network, pool in self.world.pools.items():
            actor = self._actor(network, replica)
            if (
                not pool.v4
                and actor is not None
                and (actor.book.responder is not None or actor.config.options is not None)
            ):
                self.violations.append(f"dhcp: the {role}'s pool for IPv6-only {network} "
                                       "has a DHCP (IPv4) half (settled)")  # fmt: skip
        served = set()
        for _, network, mac, ip in dhcp_candidates(self.world, obs):
            served.add(mac)
            actor = self._actor(network, replica)
            if actor is None:
                self.violations.append(f"dhcp: no running pool for {network} in the {role}")
                continue
            pool = self.world.pools[network]
            reply = self.send(actor, mac, MessageType.DISCOVER, IPv4Address(ip), pool.server)
            if reply is None or str(decode(reply.payload).yiaddr) != ip:
                got = decode(reply.payload).yiaddr if reply else "no answer"
                self.violations.append(
                    f"dhcp: {mac} on {network} got {got}, not {ip} from the {role} (settled)"
                )
        for mac_number in range(1, self._macs + 1):
            mac = f"52:54:00:5e:{mac_number >> 8:02x}:{mac_number % 256:02x}"
            if mac in served:
                continue
            for network, pool in self.world.pools.items():
                actor = self._actor(network, replica)
                if actor is not None:
                    reply = self.send(
                        actor, mac, MessageType.DISCOVER, pool.address(pool.start), pool.server
                    )
                    self._check_answer(network, mac, reply, settled=True)
