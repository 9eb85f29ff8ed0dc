"""What the controller remembers about one VM besides its cached API bodies."""

from __future__ import annotations

from dataclasses import dataclass, field

from kvip.actors._status_render import NicStatus
from kvip.k8s import Body
from kvip.k8s._bodies import NicRecord

#: A NIC of a VM: its network ('namespace/name') and its MAC.
NicKey = tuple[str, str]


@dataclass(slots=True)
class VmState:
    """One VM's memory in the controller: one entry per VM, so that forgetting a
    deleted VM is one `pop` and nothing about it stays behind."""

    #: The NICs' status to show in the vmnetcfg (None: nothing to write).
    nics: list[NicStatus] | None = None
    #: Addresses a client declined, by NIC: shown in the status until a reset.
    declined: dict[NicKey, str] = field(default_factory=dict)
    #: The same for IPv6 addresses (DHCPv6 DECLINE): the NIC's IPv4 address is
    #: still answered.
    declined6: dict[NicKey, str] = field(default_factory=dict)
    #: Why a pool could not restore a NIC's record, by NIC.
    restore_errors: dict[NicKey, str] = field(default_factory=dict)
    #: Networks where the VM holds claims whose vmnetcfg write failed without a
    #: clear answer (the write may have landed): swept after its next good write.
    unsure: set[str] = field(default_factory=set)
    #: The API server's last permanent refusal of the VM's writes (403, 422, ...):
    #: reported once, not once per retry.
    refusal: str | None = None
    #: Records of a deleted vmnetcfg of the live VM (_finalize), until its next
    #: vmnetcfg lists them again: they are its claims' requests meanwhile, and a
    #: pool that starts meanwhile holds them (Controller._restorations).
    orphans: list[NicRecord] = field(default_factory=list)
    #: The problems with its NICs already told (log, Event) while they last.
    told: set[str] = field(default_factory=set)

    @property
    def empty(self) -> bool:
        """Whether there is nothing left to remember."""
        return (
            self.nics is None
            and not self.declined
            and not self.declined6
            and not self.restore_errors
            and not self.unsure
            and self.refusal is None
            and not self.orphans
            and not self.told
        )


def store_newest(cache: dict[str, Body], key: str, body: Body) -> None:
    """Cache `body` unless the cache already holds a newer version of it (our own
    write can be seen before the watch delivers the older event)."""
    held = cache.get(key)
    if held is not None:
        try:
            if int(held["metadata"]["resourceVersion"]) > int(body["metadata"]["resourceVersion"]):
                return
        except (KeyError, ValueError):
            pass
    cache[key] = body
