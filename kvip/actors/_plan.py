"""What a reconcile of one VM does, decided without I/O.

The controller's `_sync_vm` asks `plan_nics` what to claim for each NIC, asks
the pools, gives their answers to `settle`, writes the vmnetcfg and then does
what `after_write` says. Everything here is pure: unit-tested without an API
server or a pool.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import AddressValueError, IPv4Address, IPv6Address
from typing import NamedTuple

from kvip.actors._status_render import NicStatus
from kvip.actors._vm_state import NicKey
from kvip.ipam import IpamError
from kvip.k8s._bodies import NicRecord, VmNic

log = logging.getLogger(__name__)

NOT_READY = "its IPPool is not ready"


@dataclass(frozen=True, slots=True)
class Claim:
    """Ask the NIC's pool for an address."""

    nic: VmNic
    mac: str
    #: The NIC's record in the vmnetcfg, if any.
    previous: NicRecord | None
    requested: IPv4Address | None
    #: The record of the NIC's old MAC that holds `requested` (a MAC change).
    replaces: NicRecord | None = None
    #: On a pool with ipv6config: the IPv6 address recorded or asked for.
    requested6: IPv6Address | None = None

    @property
    def key(self) -> NicKey:
        return (self.nic.network, self.mac)


@dataclass(frozen=True, slots=True)
class Settled:
    """A NIC decided without asking a pool: what to record, what to show."""

    record: NicRecord | None = None
    status: NicStatus | None = None
    #: What is wrong with the NIC that an operator must fix: logged and an Event
    #: (once while it lasts), besides the status.
    problem: str | None = None


def plan_nics(
    key: str,
    nics: Iterable[VmNic],
    listed: Iterable[NicRecord],
    *,
    has_pool: Callable[[str], bool],
    configured: Callable[[str], bool],
    all_pools: bool = False,
) -> list[Claim | Settled]:
    """One step per NIC, in the VM's order (the vmnetcfg keeps it).

    `listed` are the vmnetcfg's records (one per NIC); `has_pool(network)`: a
    pool of this kvip serves the network; `configured(network)`: an IPPool of
    this kvip names it (ready or not); `all_pools`: this kvip serves every
    IPPool (no selector), so a network without one has none anywhere."""
    nics = list(nics)
    listed = list(listed)
    old = {(record.network, record.mac): record for record in listed}
    current = {(nic.network, nic.mac) for nic in nics}
    steps: list[Claim | Settled] = []
    seen: set[NicKey] = set()
    for nic in nics:
        mac = nic.mac
        if mac is None:
            # Picked up when kubemacpool (or the user) sets one; until then, said.
            if all_pools or configured(nic.network):
                problem = (f"NIC {nic.interface} has no MAC address: kvip reserves by MAC; "
                           "install kubemacpool, or set macAddress in the VM's interfaces "
                           "(or Harvester's MAC annotation)")  # fmt: skip
                steps.append(Settled(None, NicStatus(nic.network, "", False, problem), problem))
            continue
        if (nic.network, mac) in seen:
            log.warning("VM %s lists %s on %s twice: one NIC, one address", key, mac, nic.network)
            continue
        seen.add((nic.network, mac))
        previous = old.get((nic.network, mac))
        if not has_pool(nic.network):
            known = configured(nic.network)
            if not known and all_pools:
                problem = (f"no IPPool serves network {nic.network}: NIC {nic.interface} gets "
                           f"no address from kvip; create an IPPool with networkname "
                           f"{nic.network}")  # fmt: skip
                status = NicStatus(nic.network, mac, False, problem)
                steps.append(Settled(previous, status, problem))
                continue
            steps.append(no_pool(nic.network, mac, previous, configured=known))
            continue
        requested_text = previous.ip if previous is not None and previous.ip else nic.requested_ip
        requested6_text = (
            previous.ip6 if previous is not None and previous.ip6 else nic.requested_ip6
        )
        try:
            requested = IPv4Address(requested_text) if requested_text else None
        except AddressValueError:
            message = f"{requested_text!r} is not an address"
            steps.append(Settled(status=NicStatus(nic.network, mac, False, message)))
            continue
        try:
            requested6 = IPv6Address(requested6_text) if requested6_text else None
        except AddressValueError:
            message = f"{requested6_text!r} is not an IPv6 address"
            steps.append(Settled(status=NicStatus(nic.network, mac, False, message)))
            continue
        replaces = None
        if previous is None and requested is not None:
            # A MAC change: the NIC's old MAC holds what it asks for.
            replaces = _recorded_for_gone_nic(listed, current, nic.network, requested)
        steps.append(Claim(nic, mac, previous, requested, replaces, requested6))
    return steps


def no_pool(network: str, mac: str, previous: NicRecord | None, *, configured: bool) -> Settled:
    """Not ours to judge: a network without a pool here may be another kvip
    shard's, or not managed by kvip at all. What is recorded stays."""
    status = NicStatus(network, mac, False, NOT_READY) if configured else None
    return Settled(previous, status)


class ToServe(NamedTuple):
    """A NIC's claimed addresses, to serve once its record is durable."""

    network: str
    mac: str
    #: None on an IPv6-only pool.
    ip: IPv4Address | None
    ip6: IPv6Address | None = None


#: What a pool answered to a NIC's IPv6 claim: the address, why not, or None
#: for a pool without ipv6config.
Answer6 = IPv6Address | IpamError | None


@dataclass(slots=True)
class Outcome:
    """What the claims came to: the records to write, the statuses to show, and
    the reservations to serve once the records are durable."""

    records: list[NicRecord] = field(default_factory=list)
    statuses: list[NicStatus] = field(default_factory=list)
    to_serve: list[ToServe] = field(default_factory=list)
    #: New NICs whose claim took the address of a record of the NIC's old MAC.
    moved: dict[NicKey, NicRecord] = field(default_factory=dict)
    #: (claim, message) of each claim the pool refused.
    failed: list[tuple[Claim, str]] = field(default_factory=list)

    def add(self, settled: Settled) -> None:
        if settled.record is not None:
            self.records.append(settled.record)
        if settled.status is not None:
            self.statuses.append(settled.status)

    def settle(
        self,
        claim: Claim,
        answer: IPv4Address | IpamError | None,
        *,
        restore_error: str | None = None,
        declined: str | None = None,
        answer6: Answer6 = None,
        declined6: str | None = None,
    ) -> None:
        """Take a pool's answer to `claim`: an address (None from an IPv6-only
        pool, whose `answer6` is the NIC's address), or why not. A failed claim
        keeps the NIC's record (its address stays recorded; on an IPv6-only pool
        its IPv6 one alone) and shows why; `restore_error` says it better when
        the record could not be restored."""
        network, mac = claim.key
        kept = claim.previous
        if answer is None and isinstance(answer6, IpamError):
            answer = answer6  # an IPv6-only pool: its one claim failed
            if kept is not None:  # its IPv4 address went with the ipv4config
                kept = replace(kept, ip=None) if kept.ip6 else None
        if isinstance(answer, IpamError):
            message = restore_error or str(answer)
            self.failed.append((claim, message))
            self.add(Settled(kept, NicStatus(network, mac, False, message)))
            return
        ip = answer
        if claim.replaces is not None and ip is not None and ip == claim.requested:
            self.moved[claim.key] = claim.replaces
        ip6 = answer6 if isinstance(answer6, IPv6Address) else None
        if ip is not None and isinstance(answer6, IpamError):
            # The NIC keeps its IPv4 address, and its IPv6 record as it was.
            kept6 = claim.previous.ip6 if claim.previous is not None else None
            self.failed.append((claim, f"IPv6: {answer6}"))
            self.records.append(NicRecord(network, mac, str(ip), kept6))
            message = f"{ip} reserved; no IPv6 address: {answer6}"
            self.statuses.append(NicStatus(network, mac, False, message, str(ip)))
            self.to_serve.append(ToServe(network, mac, ip))
            return
        text = str(ip) if ip is not None else None
        text6 = str(ip6) if ip6 is not None else None
        self.records.append(NicRecord(network, mac, text, text6))
        shown = " and ".join(t for t in (text, text6) if t is not None)
        if declined6 is not None and ip6 is not None and (declined is None or ip is None):
            # The IPv4 address, if any, is still answered: the entry's `declined`
            # names the IPv6 one only.
            status = NicStatus(network, mac, False, declined6, text, text6, declined6=True)
            self.statuses.append(status)
        elif declined is not None and ip is not None:
            status = NicStatus(network, mac, False, declined, text, text6, declined=True)
            self.statuses.append(status)
        else:
            self.statuses.append(NicStatus(network, mac, True, f"{shown} reserved", text, text6))
        self.to_serve.append(ToServe(network, mac, ip, ip6))


def first_per_nic(key: str, records: Iterable[NicRecord]) -> list[NicRecord]:
    """A NIC's record is the first one listing its network and MAC. A hand-edited
    vmnetcfg may list a NIC twice; the later entries are dropped (and the address
    in them not held), so one NIC never holds two addresses. (One MAC on two
    networks is two NICs.)"""
    first: dict[tuple[str, str], NicRecord] = {}
    for record in records:
        kept = first.setdefault((record.network, record.mac), record)
        if kept is not record:
            log.warning(
                "vmnetcfg %s lists %s on %s twice (%s, then %s): keeping the first",
                key,
                record.mac,
                record.network,
                kept.ip or "no address",
                record.ip or "no address",
            )
    return list(first.values())


def released_records(
    old: Mapping[NicKey, NicRecord], records: Iterable[NicRecord]
) -> list[NicRecord]:
    """The old records whose NIC the new records no longer list: their addresses go."""
    kept = {(record.network, record.mac) for record in records}
    return [record for nic, record in old.items() if nic not in kept]


def newly_claimed(old: Mapping[NicKey, NicRecord], to_serve: Iterable[ToServe]) -> list[ToServe]:
    """The claims that no record holds yet: a refused write must give them back.
    (A NIC of an IPv6-only pool has its IPv6 address alone recorded.)"""
    fresh = []
    for serve in to_serve:
        record = old.get((serve.network, serve.mac))
        if record is None or not (record.ip if serve.ip is not None else record.ip6):
            fresh.append(serve)
    return fresh


def refused_statuses(
    statuses: Iterable[NicStatus], listed: Iterable[NicRecord], problem: str
) -> list[NicStatus]:
    """The statuses to show when the vmnetcfg write was refused for good: a NIC
    whose address the write carried has none (the pools serve only what the
    vmnetcfg records)."""
    recorded = {(record.network, record.mac, record.ip) for record in listed}
    recorded6 = {(record.network, record.mac, record.ip6) for record in listed}
    return [
        nic
        if (nic.ip is None or (nic.network, nic.mac, nic.ip) in recorded)
        and (nic.ip6 is None or (nic.network, nic.mac, nic.ip6) in recorded6)
        else NicStatus(nic.network, nic.mac, False, problem)
        for nic in statuses
    ]


def _recorded_for_gone_nic(
    records: Iterable[NicRecord],
    current: set[tuple[str, str | None]],
    network: str,
    ip: IPv4Address,
) -> NicRecord | None:
    """The record of `ip` on `network` whose NIC the VM no longer has, if any."""
    for record in records:
        if record.network == network and (record.network, record.mac) not in current:
            try:
                if record.ip and IPv4Address(record.ip) == ip:
                    return record
            except AddressValueError:
                continue
    return None
