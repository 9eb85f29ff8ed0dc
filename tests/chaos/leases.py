"""The chaos scenarios' DHCP checks: real udhcpc clients in the lab's client
namespaces, playing a VM's NIC by taking its MAC."""

from __future__ import annotations

import random

from tests.chaos.invariants import Observation, dhcp_candidates, live_records, network_of
from tests.chaos.model import World
from tests.chaos.rig import Rig
from tests.lab.dhcpclients import NoLeaseError, run_udhcpc


def lease_checks(
    rig: Rig, world: World, obs: Observation, rng: random.Random, samples: int
) -> list[tuple[str, bool]]:
    """(what happened, whether it is a violation) for `samples` NICs that must
    lease exactly their recorded IPv4 address, and one NIC of an IPv6-only pool,
    which must lease none (DHCP is not answered there)."""
    checks = []
    candidates = dhcp_candidates(world, obs)
    for vm, network, mac, ip in rng.sample(candidates, min(samples, len(candidates))):
        leased = _lease(rig, world, network, mac, timeout=10)
        if leased is None:
            checks.append((f"dhcp: {vm} [{mac}] got no lease, recorded {ip}", True))
        else:
            checks.append((f"dhcp: {vm} [{mac}] leased {leased}, recorded {ip}", leased != ip))
    only6 = sorted(
        (vm, record.mac)
        for vm, record in live_records(world, obs)
        if not world.pools[network_of(world, vm, record.mac)].v4
    )
    if only6:
        vm, mac = rng.choice(only6)
        network = network_of(world, vm, mac)
        leased = _lease(rig, world, network, mac, timeout=6)
        checks.append((f"dhcp: {vm} [{mac}] on IPv6-only {network} leased {leased}", bool(leased)))
    return checks


def _lease(rig: Rig, world: World, network: str, mac: str, *, timeout: float) -> str | None:
    """The address a client with `mac` on `network`'s wire leases; None: none."""
    interface = world.pools[network].interface
    client = rig.lab.set_mac(rig.clients[interface], mac)
    rig.clients[interface] = client
    try:
        return str(run_udhcpc(client, timeout=timeout).ip)
    except NoLeaseError:
        return None
