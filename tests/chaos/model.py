"""What the chaos driver believes the world should be: its VMs, their NICs, its pools.

The driver is the only writer of VMs and of IPPool specs, so this model is the
truth those objects converge to; kvip's vmnetcfgs and statuses are checked
against it (invariants.py).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from tests.lab import objects

_TERMS = itertools.count()


@dataclass(slots=True)
class Nic:
    iface: str
    #: The network's short name ("net-a"), in the scenario's namespace.
    network: str
    #: Lower-case, or None while "kubemacpool" has not set one yet.
    mac: str | None


@dataclass(slots=True)
class Vm:
    name: str
    uid: str
    nics: list[Nic]

    def body_nics(self) -> list[tuple[str, str, str | None]]:
        return [(nic.iface, nic.network, nic.mac) for nic in self.nics]

    def template_patch(self) -> dict[str, Any]:
        """A merge patch that sets the VM's NIC lists to the model's (lists are
        replaced whole by a merge patch)."""
        spec = objects.vm(self.name, "unused", self.body_nics())["spec"]["template"]["spec"]
        return {
            "spec": {
                "template": {
                    "spec": {
                        "domain": {
                            "devices": {"interfaces": spec["domain"]["devices"]["interfaces"]}
                        },
                        "networks": spec["networks"],
                    }
                }
            }
        }


@dataclass(slots=True)
class Range6:
    """A dual-stack pool's IPv6 half: [subnet + start, subnet + end] minus
    `exclude`, small so that it runs out before the IPv4 range does."""

    subnet: IPv6Network
    start: int = 0x10
    end: int = 0x12
    exclude: list[int] = field(default_factory=list)
    #: Which ipv6config this is: a new one for each ipv6config added (a NIC's
    #: IPv6 address is promised to stay only while the same one stays).
    term: int = field(default_factory=lambda: next(_TERMS), compare=False)

    def address(self, offset: int) -> IPv6Address:
        return self.subnet.network_address + offset

    def capacity(self) -> int:
        excluded = {e for e in self.exclude if self.start <= e <= self.end}
        return self.end - self.start + 1 - len(excluded)

    def assignable(self, ip: str) -> bool:
        """Whether kvip may hold `ip` for a NIC under the current spec."""
        try:
            address = IPv6Address(ip)
        except ValueError:
            return False
        if address not in self.subnet:
            return False
        offset = int(address) - int(self.subnet.network_address)
        return self.start <= offset <= self.end and offset not in self.exclude

    def ipv6config(self) -> dict[str, Any]:
        return {
            "subnet": str(self.subnet),
            "serverip": str(self.address(1)),
            "pool": {
                "start": str(self.address(self.start)),
                "end": str(self.address(self.end)),
                "exclude": [str(self.address(e)) for e in sorted(self.exclude)],
            },
            "dns": [str(self.address(0x53))],
        }


@dataclass(slots=True)
class Pool:
    """One IPPool whose range is [subnet + start, subnet + end] minus `exclude`;
    dual-stack while `v6` is set, IPv6-only while `v4` is not (the IPv4 fields
    then keep the range an ipv4config added again will have). Never neither."""

    name: str
    network: str
    interface: str
    subnet: IPv4Network
    start: int
    end: int
    exclude: list[int] = field(default_factory=list)
    dns: list[str] = field(default_factory=lambda: ["198.18.0.53"])
    leasetime: int = 600
    v6: Range6 | None = None
    #: Whether the pool has an ipv4config (only False with a `v6`).
    v4: bool = True
    #: How many times the ipv4config was removed or added: a NIC's IPv4 address
    #: is promised to stay only while this stays (invariants.Tracker).
    v4_changes: int = 0

    def set_v4(self, present: bool) -> None:
        """Add (True) or remove (False) the ipv4config; never the pool's last half."""
        if not present and self.v6 is None:
            raise ValueError(f"IPPool {self.name} would have neither ipv4config nor ipv6config")
        if present != self.v4:
            self.v4 = present
            self.v4_changes += 1

    @property
    def server(self) -> IPv4Address:
        return self.subnet.network_address + 1

    def address(self, offset: int) -> IPv4Address:
        return self.subnet.network_address + offset

    def offset(self, ip: IPv4Address) -> int:
        return int(ip) - int(self.subnet.network_address)

    def capacity(self) -> int:
        excluded = {e for e in self.exclude if self.start <= e <= self.end}
        return self.end - self.start + 1 - len(excluded)

    def assignable(self, ip: str) -> bool:
        """Whether kvip may hold `ip` for a NIC under the current spec (never on
        an IPv6-only pool)."""
        if not self.v4:
            return False
        try:
            address = IPv4Address(ip)
        except ValueError:
            return False
        if address not in self.subnet:
            return False
        offset = self.offset(address)
        return self.start <= offset <= self.end and offset not in self.exclude

    def ipv4config(self) -> dict[str, Any]:
        return {
            "pool": {
                "start": str(self.address(self.start)),
                "end": str(self.address(self.end)),
                "exclude": [str(self.address(e)) for e in sorted(self.exclude)],
            },
            "dns": list(self.dns),
            "leasetime": self.leasetime,
        }

    def full_ipv4config(self) -> dict[str, Any]:
        """The whole ipv4config (a merge patch that adds it back must give all of it)."""
        return {"serverip": str(self.server), "subnet": str(self.subnet), **self.ipv4config()}

    def body(self, *, namespace: str, selector: str) -> dict[str, Any]:
        body = objects.ippool(
            self.name,
            f"{namespace}/{self.network}",
            selector=selector,
            interface=self.interface,
            server=str(self.server),
            subnet=str(self.subnet),
            start=str(self.address(self.start)),
            end=str(self.address(self.end)),
            ipv6config=self.v6.ipv6config() if self.v6 is not None else None,
            **self.ipv4config(),
        )
        if not self.v4:
            del body["spec"]["ipv4config"]  # IPv6-only
        return body

    def spec_patch(self) -> dict[str, Any]:
        """A merge patch that sets both address families to the model's (a null
        ipv6config makes the pool IPv4-only, a null ipv4config IPv6-only)."""
        v4 = self.full_ipv4config() if self.v4 else None
        v6 = self.v6.ipv6config() if self.v6 is not None else None
        return {"spec": {"ipv4config": v4, "ipv6config": v6}}


@dataclass(slots=True)
class World:
    """The scenario's model: live VMs, deleted VMs, pools by network."""

    namespace: str
    pools: dict[str, Pool]
    vms: dict[str, Vm] = field(default_factory=dict)
    #: VMs the driver deleted (name -> uid); names are never reused in a scenario.
    deleted: dict[str, str] = field(default_factory=dict)

    def nics_on(self, network: str) -> int:
        return sum(1 for vm in self.vms.values() for nic in vm.nics if nic.network == network)

    def owner(self, vm: str, mac: str) -> str:
        """How kvip names a NIC in IPPool.status (kubevirt-ip-helper's form)."""
        return f"{self.namespace}/{vm} [{mac}]"

    def network_key(self, network: str) -> str:
        return f"{self.namespace}/{network}"
