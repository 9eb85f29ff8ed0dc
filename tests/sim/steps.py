"""The steps a simulation takes, and the hypothesis strategy that chooses them.

Steps name VMs, NICs and networks by small integers taken modulo what exists
when the step runs, so every list of steps is valid in every world and
hypothesis can shrink a failing list freely. A step's repr is its replay:
paste the printed list into `run_steps` (tests/sim/test_simulation.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st


@dataclass(frozen=True, slots=True)
class CreateVm:
    #: (network index, has a MAC yet) per NIC.
    nics: tuple[tuple[int, bool], ...]


@dataclass(frozen=True, slots=True)
class DeleteVm:
    vm: int


@dataclass(frozen=True, slots=True)
class AddNic:
    vm: int
    net: int


@dataclass(frozen=True, slots=True)
class RemoveNic:
    vm: int
    nic: int


@dataclass(frozen=True, slots=True)
class ChangeMac:
    """Change the NIC's MAC, or set it when it has none yet."""

    vm: int
    nic: int


@dataclass(frozen=True, slots=True)
class PoolRange:
    """The network's ipv4config: "add" (it had none: dual-stack again), "remove"
    (IPv6-only; none when the pool has no ipv6config), "end" (shrink or grow),
    "exclude" (one more), "include" (one less)."""

    net: int
    kind: str
    value: int


@dataclass(frozen=True, slots=True)
class PoolRange6:
    """The network's ipv6config: "add" (the pool becomes dual-stack), "remove"
    (IPv4-only; none when the pool has no ipv4config), "end" (shrink or grow),
    "exclude" (one more), "include" (one less)."""

    net: int
    kind: str
    value: int


@dataclass(frozen=True, slots=True)
class PoolOptions:
    net: int
    dns: int


@dataclass(frozen=True, slots=True)
class DeletePool:
    net: int


@dataclass(frozen=True, slots=True)
class CreatePool:
    """Create the network's IPPool again (when it was deleted)."""

    net: int


@dataclass(frozen=True, slots=True)
class Crash:
    """The pool's actor dies of an unexpected exception. The crash lands before
    the next step, unless `with_next` (then it lands in the same instant)."""

    net: int
    with_next: bool = False


@dataclass(frozen=True, slots=True)
class Fault:
    """The controller's next call of `op` (on `plural`) fails (apidouble.Fault)."""

    op: str
    error: str
    plural: str | None = None


@dataclass(frozen=True, slots=True)
class Compact:
    """etcd compacts and the API server restarts: watches resume into 410 Gone."""


@dataclass(frozen=True, slots=True)
class DropWatches:
    """The API server restarts: every watch loses its connection and resumes."""


@dataclass(frozen=True, slots=True)
class LeaderLoss:
    """The leader loses its Lease (its term ends); a new term starts `gap` s later."""

    gap: float


@dataclass(frozen=True, slots=True)
class Handover:
    """The leader cannot renew and steps down (it goes on serving); the follower
    leads."""


@dataclass(frozen=True, slots=True)
class Dhcp:
    """A packet from the NIC's MAC: DISCOVER, REQUEST, DECLINE or RELEASE."""

    vm: int
    nic: int
    kind: str


@dataclass(frozen=True, slots=True)
class Dhcp6:
    """A DHCPv6 packet from the NIC's MAC (its DUID-LL): SOLICIT, REQUEST or
    DECLINE (of its recorded IPv6 address)."""

    vm: int
    nic: int
    kind: str


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float


@dataclass(frozen=True, slots=True)
class DeleteVmnetcfg:
    """A user deletes a live VM's vmnetcfg (kvip must give it back unchanged)."""

    vm: int


@dataclass(frozen=True, slots=True)
class StaticIp:
    """Ask for a fixed address (pool offset) for a NIC via the static-ip annotation."""

    vm: int
    nic: int
    offset: int
    #: On a dual-stack pool, also an IPv6 address (pool offset): "<v4>,<v6>".
    offset6: int | None = None


Step = (
    CreateVm
    | DeleteVm
    | AddNic
    | RemoveNic
    | ChangeMac
    | PoolRange
    | PoolRange6
    | PoolOptions
    | DeletePool
    | CreatePool
    | Crash
    | Fault
    | Compact
    | DropWatches
    | LeaderLoss
    | Handover
    | Dhcp
    | Dhcp6
    | Wait
    | DeleteVmnetcfg
    | StaticIp
)

small = st.integers(0, 7)
WRITES = ("create", "replace", "replace_status", "patch", "delete")
PLURALS = (None, "virtualmachinenetworkconfigs", "ippools")

faults = st.one_of(
    st.builds(
        Fault,
        st.sampled_from(WRITES),
        st.sampled_from(("conflict", "unavailable", "timeout", "forbidden")),
        st.sampled_from(PLURALS),
    ),
    st.builds(
        Fault,
        st.sampled_from(("get", "list", "event")),
        st.sampled_from(("unavailable", "timeout")),
        st.sampled_from(PLURALS),
    ),
    st.builds(
        Fault,
        st.just("watch"),
        st.sampled_from(("unavailable", "gone", "timeout")),
        st.sampled_from(PLURALS),
    ),
)

#: The steps of the main simulation, weighted by repetition.
STEPS: dict[str, st.SearchStrategy[Step]] = {
    "create-vm": st.builds(
        CreateVm,
        st.lists(st.tuples(small, st.booleans() | st.just(True)), min_size=1, max_size=2).map(
            tuple
        ),
    ),
    "delete-vm": st.builds(DeleteVm, small),
    "add-nic": st.builds(AddNic, small, small),
    "remove-nic": st.builds(RemoveNic, small, small),
    "change-mac": st.builds(ChangeMac, small, small),
    "pool-range": st.builds(
        PoolRange,
        small,
        st.sampled_from(("add", "remove", "end", "end", "exclude", "include")),
        st.integers(0, 40),
    ),
    "pool-range6": st.builds(
        PoolRange6,
        small,
        st.sampled_from(("add", "remove", "end", "end", "exclude", "include")),
        st.integers(0, 6),
    ),
    "pool-options": st.builds(PoolOptions, small, st.integers(50, 60)),
    "delete-pool": st.builds(DeletePool, small),
    "create-pool": st.builds(CreatePool, small),
    "crash": st.builds(Crash, small),
    "fault": faults,
    #: A write that lands, but its answer is lost (the request timed out).
    "fault-landed": st.builds(
        Fault, st.sampled_from(WRITES), st.just("timeout-applied"), st.sampled_from(PLURALS)
    ),
    "compact": st.just(Compact()),
    "drop-watches": st.just(DropWatches()),
    "leader-loss": st.builds(LeaderLoss, st.sampled_from((0.0, 2.0, 15.0))),
    "handover": st.just(Handover()),
    "dhcp": st.builds(Dhcp, small, small, st.sampled_from(("DISCOVER", "REQUEST", "RELEASE"))),
    "dhcp-decline": st.builds(Dhcp, small, small, st.just("DECLINE")),
    "dhcp6": st.builds(Dhcp6, small, small, st.sampled_from(("SOLICIT", "REQUEST"))),
    "dhcp6-decline": st.builds(Dhcp6, small, small, st.just("DECLINE")),
    "delete-vmnetcfg": st.builds(DeleteVmnetcfg, small),
    "static-ip": st.builds(
        StaticIp, small, small, st.integers(0, 10), st.none() | st.integers(0, 7)
    ),
    "wait": st.builds(Wait, st.sampled_from((0.0, 0.01, 0.1, 0.5, 2.0, 10.0, 40.0))),
}
WEIGHTS = {
    "create-vm": 4,
    "wait": 6,
    "dhcp": 3,
    "dhcp6": 2,
    "fault": 6,
    "change-mac": 2,
    "add-nic": 2,
    "delete-vm": 2,
    "remove-nic": 1,
    "pool-range": 2,
}


def steps(kinds: tuple[str, ...] | None = None) -> st.SearchStrategy[Step]:
    """One step of the given kinds (default: all the main ones), weighted."""
    chosen = kinds or tuple(STEPS)
    return st.one_of([STEPS[k] for k in chosen for _ in range(WEIGHTS.get(k, 1))])
