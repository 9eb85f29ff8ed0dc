"""The promises kvip makes about addresses, checked against what the API server shows.

Pure: an `Observation` is read from the API server by the driver; these
functions compare it with the driver's model and return violations as text
(empty: all held).

- `Tracker.observe` runs after every operation, while kvip is still catching
  up: no two live VMs ever record the same address (IPv4 or IPv6), and a NIC's
  recorded IPv4 address never changes while the NIC (VM uid, MAC) lives and its
  pool keeps its ipv4config. Removing the ipv4config (the pool becomes
  IPv6-only) releases the address: the record keeps showing it only until kvip
  reconciles the NIC. Adding an ipv4config again gives the NIC an IPv4 address
  at its next reconcile, not necessarily the old one (a record that still
  showed the old one when the ipv4config came back keeps it); from then on it
  is the NIC's address again, and never changes while the pool keeps that
  ipv4config. Likewise a NIC's IPv6 address never changes while its pool keeps
  the same ipv6config (its only address on an IPv6-only pool).
- `check_settled` runs once kvip has settled: every NIC has exactly one
  address, and on a dual-stack pool an IPv6 address in the pool's IPv6 range
  too, or a status that says why not; on an IPv6-only pool an IPv6 address in
  range and no IPv4 address at all (an `ipaddress` left in a record after the
  pool lost its ipv4config is a violation), or a status that says why not;
  deleted VMs hold nothing, IPPool status (both families, no `ipv4` on an
  IPv6-only pool) agrees with the vmnetcfgs, and vmnetcfg status agrees with
  the spec.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.model import World

EXCLUDED = "EXCLUDED"


@dataclass(frozen=True, slots=True)
class Record:
    network: str
    mac: str
    ip: str | None
    #: `ipv6address`: the NIC's IPv6 address on a dual-stack pool.
    ip6: str | None = None


@dataclass(frozen=True, slots=True)
class CfgView:
    """One vmnetcfg as the API server shows it."""

    name: str
    owner_uids: frozenset[str]
    deleting: bool
    records: tuple[Record, ...]
    #: (networkname, macaddress, status) of status.networkconfig.
    status: tuple[tuple[str, str, str], ...]
    #: (networkname, macaddress) -> message of status.networkconfig.
    messages: dict[tuple[str, str], str] = field(default_factory=dict)

    @staticmethod
    def parse(body: dict[str, Any]) -> CfgView:
        meta = body.get("metadata") or {}
        records = tuple(
            Record(
                str(entry.get("networkname")),
                str(entry.get("macaddress", "")).lower(),
                str(entry["ipaddress"]) if entry.get("ipaddress") else None,
                str(entry["ipv6address"]) if entry.get("ipv6address") else None,
            )
            for entry in (body.get("spec") or {}).get("networkconfig") or []
        )
        status = tuple(
            (
                str(entry.get("networkname")),
                str(entry.get("macaddress", "")).lower(),
                str(entry.get("status")),
            )
            for entry in (body.get("status") or {}).get("networkconfig") or []
        )
        messages = {
            (str(entry.get("networkname")), str(entry.get("macaddress", "")).lower()): str(
                entry.get("message", "")
            )
            for entry in (body.get("status") or {}).get("networkconfig") or []
        }
        return CfgView(
            name=str(meta.get("name")),
            owner_uids=frozenset(str(ref.get("uid")) for ref in meta.get("ownerReferences") or []),
            deleting=bool(meta.get("deletionTimestamp")),
            records=records,
            status=status,
            messages=messages,
        )


def _allocated(family: dict[str, Any]) -> dict[str, str]:
    return {
        str(ip): str(owner)
        for ip, owner in (family.get("allocated") or {}).items()
        if owner != EXCLUDED
    }


@dataclass(frozen=True, slots=True)
class PoolView:
    """One IPPool's status.ipv4 and status.ipv6 (EXCLUDED entries left out)."""

    allocated: dict[str, str]
    used: int | None
    #: status.ipv6 (None: the status has none); its counts are strings.
    allocated6: dict[str, str] | None = None
    used6: int | None = None
    available6: int | None = None
    #: Whether the status has `ipv4` at all (an IPv6-only pool's has not).
    has_ipv4: bool = True

    @staticmethod
    def parse(body: dict[str, Any]) -> PoolView:
        status = body.get("status") or {}
        ipv4 = status.get("ipv4") or {}
        used = ipv4.get("used")
        ipv6 = status.get("ipv6")
        used6 = ipv6.get("used") if isinstance(ipv6, dict) else None
        available6 = ipv6.get("available") if isinstance(ipv6, dict) else None
        return PoolView(
            _allocated(ipv4),
            int(used) if used is not None else None,
            _allocated(ipv6) if isinstance(ipv6, dict) else None,
            int(used6) if used6 is not None else None,
            int(available6) if available6 is not None else None,
            "ipv4" in status,
        )


@dataclass(frozen=True, slots=True)
class Observation:
    cfgs: dict[str, CfgView]
    #: By network short name.
    pools: dict[str, PoolView]


def live_records(world: World, obs: Observation) -> list[tuple[str, Record]]:
    """(vm name, record) of the vmnetcfgs that belong to a live VM of the model
    and whose MAC is still one of that VM's NICs."""
    found: list[tuple[str, Record]] = []
    for name, vm in world.vms.items():
        cfg = obs.cfgs.get(name)
        if cfg is None or cfg.deleting or (cfg.owner_uids and vm.uid not in cfg.owner_uids):
            continue
        macs = {nic.mac for nic in vm.nics if nic.mac}
        found.extend((name, record) for record in cfg.records if record.mac in macs)
    return found


def duplicates(pairs: list[tuple[str, Record]]) -> list[str]:
    """Addresses (IPv4 or IPv6) recorded for more than one NIC."""
    holders: dict[str, list[str]] = defaultdict(list)
    for name, record in pairs:
        for ip in (record.ip, record.ip6):
            if ip:
                holders[ip].append(f"{name} [{record.mac}]")
    return [
        f"duplicate: {ip} is recorded for {', '.join(sorted(who))}"
        for ip, who in sorted(holders.items())
        if len(who) > 1
    ]


def network_of(world: World, name: str, mac: str) -> str:
    """The network of the live VM `name`'s NIC with `mac`."""
    return next(nic.network for nic in world.vms[name].nics if nic.mac == mac)


@dataclass(slots=True)
class Tracker:
    """The first IPv4 address seen for each NIC, by (VM uid, MAC), with the
    pool's `v4_changes` when it was seen: an address seen under an earlier
    ipv4config (since removed, perhaps added again) promises nothing."""

    first: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    #: The same for IPv6 addresses, with the pool's `Range6.term`.
    first6: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    observations: int = 0

    def forget(self, uid: str, mac: str | None) -> None:
        """The NIC is gone (removed, or its MAC changed): a new one may get any address."""
        if mac is not None:
            self.first.pop((uid, mac), None)
            self.first6.pop((uid, mac), None)

    def observe(self, world: World, obs: Observation) -> list[str]:
        self.observations += 1
        pairs = live_records(world, obs)
        violations = duplicates(pairs)
        for name, record in pairs:
            pool = world.pools[network_of(world, name, record.mac)]
            key = (world.vms[name].uid, record.mac)
            # (No ipv4config: an address left over until kvip reconciles the NIC.)
            if record.ip and pool.v4:
                violations += _pinned(self.first, key, pool.v4_changes, record.ip, name)
            if record.ip6 and pool.v6 is not None:
                violations += _pinned(self.first6, key, pool.v6.term, record.ip6, name)
        return violations


def _pinned(
    first: dict[tuple[str, str], tuple[int, str]], key: tuple[str, str], term: int, ip: str, vm: str
) -> list[str]:
    """Pin the first address a NIC records under this term of its pool's config."""
    seen = first.get(key)
    if seen is None or seen[0] != term:
        first[key] = (term, ip)
    elif seen[1] != ip:
        return [f"moved: {vm} [{key[1]}] was recorded at {seen[1]}, now at {ip}"]
    return []


def check_settled(world: World, obs: Observation) -> list[str]:
    """Everything that must hold once kvip has caught up with the model."""
    violations: list[str] = []
    all_records = [(name, r) for name, cfg in obs.cfgs.items() for r in cfg.records]
    violations += duplicates(all_records)
    expected_alloc: dict[str, dict[str, str]] = {network: {} for network in world.pools}
    expected_alloc6: dict[str, dict[str, str]] = {network: {} for network in world.pools}
    #: NICs whose status says the IPv6 range is exhausted, by network.
    starved: dict[str, list[str]] = {network: [] for network in world.pools}
    for name, vm in world.vms.items():
        cfg = obs.cfgs.get(name)
        wanted = {nic.mac: nic.network for nic in vm.nics if nic.mac}
        if cfg is None:
            if wanted:
                violations.append(f"missing: VM {name} has NICs but no vmnetcfg")
            continue
        if cfg.deleting:
            violations.append(f"deleting: the vmnetcfg of live VM {name} is being deleted")
        if vm.uid not in cfg.owner_uids:
            violations.append(f"owner: vmnetcfg {name} is not owned by VM uid {vm.uid}")
        status = {(mac, network): state for network, mac, state in cfg.status}
        for record in cfg.records:
            if record.mac not in wanted:
                violations.append(f"stale: vmnetcfg {name} still records {record}")
        for mac, network in sorted(wanted.items()):
            mine = [r for r in cfg.records if r.mac == mac]
            pool = world.pools[network]
            if not pool.v4:
                found = _check_nic6(world, name, mac, mine, cfg, expected_alloc6, starved)
                violations += found
                continue
            if len(mine) != 1 or not mine[0].ip:
                violations.append(f"address: {name} [{mac}] has records {mine}, not one address")
                continue
            record = mine[0]
            if record.network != world.network_key(network):
                violations.append(f"network: {name} [{mac}] recorded on {record.network}")
            assert record.ip is not None
            fits = pool.assignable(record.ip)
            if fits:
                expected_alloc[network][record.ip] = world.owner(name, mac)
            fits6 = True
            if pool.v6 is None:
                # (A record whose IPv4 address is out of range is kept as it is, whole.)
                if record.ip6 and fits:
                    violations.append(f"ipv6: {name} [{mac}] records {record.ip6} on "
                                      f"IPv4-only {network}")  # fmt: skip
            else:
                # An IPv6 address in the range, or a status that says why not
                # (range exhausted, or the address left outside by a shrink). An
                # IPv6 address stays held while its IPv4 one is outside the range.
                fits6 = bool(record.ip6) and pool.v6.assignable(str(record.ip6))
                message = cfg.messages.get((record.network, mac), "")
                if fits6:
                    expected_alloc6[network][str(record.ip6)] = world.owner(name, mac)
                elif fits and "exhausted" in message:
                    starved[network].append(f"{name} [{mac}]")
                elif fits and "no IPv6 address" not in message:
                    violations.append(f"ipv6: {name} [{mac}] on dual-stack {network} records "
                                      f"{record.ip6!r} (in range: False) and its status says "
                                      f"{message!r}")  # fmt: skip
            # An address the pool no longer covers is kept and reported, never dropped.
            state = status.get((mac, record.network))
            if state != ("OK" if fits and fits6 else "ERROR"):
                violations.append(
                    f"status: {name} [{mac}] at {record.ip} (in range: {fits}) and "
                    f"{record.ip6} (in range: {fits6}) shows {state!r}"
                )
        ours = {world.network_key(n) for n in world.pools}
        for network, mac, _ in cfg.status:
            if network in ours and mac and mac not in wanted:
                violations.append(f"status: vmnetcfg {name} shows a NIC {mac} it does not have")
        # A NIC without a MAC is told in the status (issue 14): one ERROR entry each.
        for network in sorted(ours):
            macless = sum(1 for n in vm.nics if n.mac is None
                          and world.network_key(n.network) == network)  # fmt: skip
            shown = [state for net, mac, state in cfg.status if net == network and not mac]
            if shown != ["ERROR"] * macless:
                violations.append(f"status: vmnetcfg {name} shows {shown} for {macless} NICs "
                                  f"without a MAC on {network}")  # fmt: skip
    for name in sorted(world.deleted):
        if name in obs.cfgs:
            violations.append(f"leak: deleted VM {name} still has a vmnetcfg")
    for network, pool in sorted(world.pools.items()):
        view = obs.pools.get(network)
        if view is None:
            violations.append(f"pool: IPPool {pool.name} has no status")
            continue
        if not pool.v4:
            if view.has_ipv4:
                violations.append(f"pool: IPv6-only IPPool {pool.name} shows status.ipv4 "
                                  f"{view.allocated} (used {view.used})")  # fmt: skip
        else:
            violations += _check_pool4(world, network, view, expected_alloc[network])
        violations += _check_pool6(world, network, view, expected_alloc6[network])
        if starved[network] and view.available6:
            violations.append(f"ipv6: {', '.join(starved[network])} on {network} show the IPv6 "
                              f"range exhausted, but it has {view.available6} free")  # fmt: skip
    return violations


def _check_nic6(
    world: World,
    name: str,
    mac: str,
    mine: list[Record],
    cfg: CfgView,
    expected6: dict[str, dict[str, str]],
    starved: dict[str, list[str]],
) -> list[str]:
    """A NIC on an IPv6-only pool: one record, an IPv6 address in range and no
    IPv4 address; or ERROR in its status and why (the range exhausted, or a
    shrink left its recorded address outside: kept and reported)."""
    network = network_of(world, name, mac)
    pool, key = world.pools[network], world.network_key(network)
    assert pool.v6 is not None
    violations = []
    if len(mine) > 1:
        violations.append(f"address: {name} [{mac}] has records {mine}, not one")
    record = mine[0] if mine else None
    if record is not None and record.ip:
        violations.append(f"ipv4: {name} [{mac}] records {record.ip} on IPv6-only {network} "
                          f"({record})")  # fmt: skip
    if record is not None and record.network != key:
        violations.append(f"network: {name} [{mac}] recorded on {record.network}")
    ip6 = record.ip6 if record is not None else None
    fits6 = bool(ip6) and pool.v6.assignable(str(ip6))
    message = cfg.messages.get((key, mac), "")
    if fits6:
        expected6[network][str(ip6)] = world.owner(name, mac)
    elif not ip6 and "exhausted" in message:
        starved[network].append(f"{name} [{mac}]")
    elif not ip6:
        violations.append(f"address: {name} [{mac}] on IPv6-only {network} has records {mine} "
                          f"and its status says {message!r}")  # fmt: skip
    state = dict(((m, n), st) for n, m, st in cfg.status).get((mac, key))
    if state != ("OK" if fits6 else "ERROR"):
        violations.append(f"status: {name} [{mac}] at {ip6} (in range: {fits6}) on IPv6-only "
                          f"{network} shows {state!r}")  # fmt: skip
    return violations


def _check_pool4(world: World, network: str, view: PoolView, expected: dict[str, str]) -> list[str]:
    """status.ipv4 of a pool with an ipv4config agrees with the vmnetcfgs."""
    return _allocated_agrees(world, network, "status", view.allocated, view.used, expected)


def _allocated_agrees(
    world: World,
    network: str,
    field: str,
    allocated: dict[str, str],
    used: int | None,
    expected: dict[str, str],
) -> list[str]:
    """One family's allocated map and used count (`field`: status or
    status.ipv6) against the vmnetcfgs; no deleted VM in it."""
    pool = world.pools[network]
    violations = []
    prefix = {f"{world.namespace}/{name} [" for name in world.deleted}
    for ip, owner in sorted(allocated.items()):
        if any(owner.startswith(p) for p in prefix):
            violations.append(f"leak: IPPool {pool.name} still allocates {ip} to {owner}")
    if allocated != expected:
        extra = sorted(set(allocated.items()) - set(expected.items()))
        missing = sorted(set(expected.items()) - set(allocated.items()))
        violations.append(
            f"pool: IPPool {pool.name} {field} differs from the vmnetcfgs: "
            f"extra {extra}, missing {missing}"
        )
    if used != len(expected):
        violations.append(
            f"pool: IPPool {pool.name} {field}.used is {used}, the vmnetcfgs hold {len(expected)}"
        )
    return violations


def _check_pool6(world: World, network: str, view: PoolView, expected: dict[str, str]) -> list[str]:
    """status.ipv6 of a dual-stack or IPv6-only pool agrees with the vmnetcfgs;
    an IPv4-only pool has none."""
    pool = world.pools[network]
    if pool.v6 is None:
        if view.allocated6 is not None:
            return [f"pool: IPv4-only IPPool {pool.name} shows status.ipv6 {view.allocated6}"]
        return []
    if view.allocated6 is None:
        return [f"pool: dual-stack IPPool {pool.name} has no status.ipv6"]
    return _allocated_agrees(world, network, "status.ipv6", view.allocated6, view.used6, expected)


def dhcp_candidates(world: World, obs: Observation) -> list[tuple[str, str, str, str]]:
    """(vm, network, mac, ip) of every NIC that kvip must answer DHCP for now."""
    found: list[tuple[str, str, str, str]] = []
    for name, record in live_records(world, obs):
        network = network_of(world, name, record.mac)
        # (assignable: never on an IPv6-only pool, which DHCP does not answer)
        if record.ip and world.pools[network].assignable(record.ip):
            found.append((name, network, record.mac, record.ip))
    return sorted(found)


def dhcp6_candidates(world: World, obs: Observation) -> list[tuple[str, str, str, str]]:
    """(vm, network, mac, ipv6 address) of every NIC that kvip must answer DHCPv6
    for now: both its addresses in its dual-stack pool's ranges, or its IPv6
    address in its IPv6-only pool's range (and no IPv4 address recorded)."""
    found: list[tuple[str, str, str, str]] = []
    for name, record in live_records(world, obs):
        pool = world.pools[network_of(world, name, record.mac)]
        ipv4_fits = (
            bool(record.ip) and pool.assignable(str(record.ip)) if pool.v4 else not record.ip
        )
        if ipv4_fits and record.ip6 and pool.v6 is not None and pool.v6.assignable(record.ip6):
            found.append((name, pool.network, record.mac, record.ip6))
    return sorted(found)
