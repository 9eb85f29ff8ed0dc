"""The allocator against a plain model: a dict address -> owner and the spec.

Small subnets (/24 to /32) make collisions, exclusions and exhaustion common.
The model derives what is assignable from the spec's text-level rules, not
from the allocator's code.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from kvip.ipam import (
    AddressExcluded,
    AddressOutOfRange,
    AddressTaken,
    Allocator,
    ExclusionReason,
    IpamError,
    Owner,
    PoolExhausted,
    PoolSpec,
)

OWNERS = st.sampled_from(
    [Owner("a"), Owner("b"), Owner("c"), Owner("default/vm1 [52:54:00:aa:bb:cc]")]
)
# Subnets inside 198.18.0.0/22, so that a reconfigure can move to a
# neighbouring or overlapping subnet.
BASE = int(IPv4Address("198.18.0.0"))


@st.composite
def subnets(draw: st.DrawFn) -> IPv4Network:
    prefix = draw(st.integers(24, 32))
    block = draw(st.integers(0, 2 ** (32 - 22) // 2 ** (32 - prefix) - 1))
    return IPv4Network((BASE + block * 2 ** (32 - prefix), prefix))


def has_broadcast(subnet: IPv4Network) -> bool:
    return subnet.prefixlen <= 30


@st.composite
def specs(draw: st.DrawFn, subnet: IPv4Network) -> PoolSpec:
    first, last = int(subnet.network_address), int(subnet.broadcast_address)
    low, high = (first + 1, last - 1) if has_broadcast(subnet) else (first, last)
    start = draw(st.integers(low, high))
    end = draw(st.integers(start, min(high, start + draw(st.sampled_from([3, 20, 300])))))
    in_subnet = st.integers(first, last).map(IPv4Address)
    near_subnet = st.integers(first - 4, last + 4).map(IPv4Address)
    return PoolSpec(
        subnet=subnet,
        start=IPv4Address(start),
        end=IPv4Address(end),
        server_ip=draw(st.none() | in_subnet),
        router=draw(st.none() | in_subnet),
        exclude=tuple(draw(st.lists(near_subnet, max_size=6))),
    )


def model_reason(spec: PoolSpec, ip: IPv4Address) -> ExclusionReason | None:
    """Why `ip` can never be handed out under `spec`, per the pool rules."""
    subnet = spec.subnet
    if has_broadcast(subnet) and ip == subnet.network_address:
        return ExclusionReason.NETWORK
    if has_broadcast(subnet) and ip == subnet.broadcast_address:
        return ExclusionReason.BROADCAST
    if ip == spec.server_ip:
        return ExclusionReason.SERVER_IP
    if ip == spec.router:
        return ExclusionReason.ROUTER
    if ip in spec.exclude:
        return ExclusionReason.SPEC
    return None


def in_range(spec: PoolSpec, ip: IPv4Address) -> bool:
    return spec.start <= ip <= spec.end


def model_assignable(spec: PoolSpec, ip: IPv4Address) -> bool:
    return in_range(spec, ip) and model_reason(spec, ip) is None


def range_of(spec: PoolSpec) -> list[IPv4Address]:
    return [IPv4Address(n) for n in range(int(spec.start), int(spec.end) + 1)]


class AllocatorMachine(RuleBasedStateMachine):
    allocator: Allocator
    spec: PoolSpec
    model: dict[IPv4Address, Owner]

    @initialize(data=st.data())
    def create(self, data: st.DataObject) -> None:
        self.spec = data.draw(specs(data.draw(subnets())))
        self.allocator = Allocator(self.spec)
        self.model = {}

    def candidates(self) -> st.SearchStrategy[IPv4Address]:
        # Around the range, so requests hit the edges, the subnet ends and beyond.
        low, high = int(self.spec.start), int(self.spec.end)
        near = st.integers(max(0, low - 3), high + 3).map(IPv4Address)
        held = st.sampled_from(sorted(self.model)) if self.model else near
        return near | held

    def expected_error(self, owner: Owner, ip: IPv4Address) -> type[IpamError] | None:
        holder = self.model.get(ip)
        if holder is not None:
            return None if holder == owner else AddressTaken
        if not in_range(self.spec, ip):
            # The subnet's ends are outside every valid range, and named as such.
            boundary = model_reason(self.spec, ip) in (
                ExclusionReason.NETWORK,
                ExclusionReason.BROADCAST,
            )
            return AddressExcluded if boundary else AddressOutOfRange
        return None if model_reason(self.spec, ip) is None else AddressExcluded

    def check_request(self, owner: Owner, ip: IPv4Address, *, via_allocate: bool) -> None:
        expected = self.expected_error(owner, ip)
        try:
            if via_allocate:
                assert self.allocator.allocate(owner, requested=ip) == ip
            else:
                self.allocator.reserve(owner, ip)
        except IpamError as error:
            assert type(error) is expected, (error, expected)
            if isinstance(error, AddressTaken):
                assert error.holder == self.model[ip]
            if isinstance(error, AddressExcluded):
                assert error.reason is model_reason(self.spec, ip)
            return
        assert expected is None
        self.model[ip] = owner

    @rule(owner=OWNERS)
    def allocate(self, owner: Owner) -> None:
        free = [
            ip
            for ip in range_of(self.spec)
            if ip not in self.model and model_assignable(self.spec, ip)
        ]
        try:
            ip = self.allocator.allocate(owner)
        except PoolExhausted:
            assert free == []
            return
        assert ip == free[0], "allocation is lowest-free"
        self.model[ip] = owner

    @rule(owner=OWNERS, data=st.data())
    def allocate_requested(self, owner: Owner, data: st.DataObject) -> None:
        self.check_request(owner, data.draw(self.candidates()), via_allocate=True)

    @rule(owner=OWNERS, data=st.data())
    def reserve(self, owner: Owner, data: st.DataObject) -> None:
        self.check_request(owner, data.draw(self.candidates()), via_allocate=False)

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        ip = data.draw(self.candidates())
        assert self.allocator.release(ip) == self.model.pop(ip, None)

    @rule(owner=OWNERS)
    def release_owner(self, owner: Owner) -> None:
        mine = sorted(ip for ip, holder in self.model.items() if holder == owner)
        assert self.allocator.release_owner(owner) == tuple(mine)
        for ip in mine:
            del self.model[ip]

    @rule(data=st.data(), move=st.booleans())
    def reconfigure(self, data: st.DataObject, move: bool) -> None:
        subnet = data.draw(subnets()) if move else self.spec.subnet
        new_spec = data.draw(specs(subnet))
        expected = sorted(
            (ip, owner) for ip, owner in self.model.items() if not model_assignable(new_spec, ip)
        )
        assert self.allocator.reconfigure(new_spec) == tuple(expected)
        for ip, _ in expected:
            del self.model[ip]
        self.spec = new_spec

    @invariant()
    def matches_the_model(self) -> None:
        assert list(self.allocator.allocations()) == sorted(self.model.items())
        assert self.allocator.used == len(self.model)
        for owner in {*self.model.values(), Owner("a")}:
            mine = tuple(sorted(ip for ip, holder in self.model.items() if holder == owner))
            assert self.allocator.addresses_of(owner) == mine

    @invariant()
    def only_assignable_addresses_are_held(self) -> None:
        for ip in self.model:
            assert model_assignable(self.spec, ip), ip
            assert self.allocator.is_assignable(ip)
            assert self.allocator.owner_of(ip) == self.model[ip]

    @invariant()
    def counts_add_up(self) -> None:
        never = [ip for ip in range_of(self.spec) if model_reason(self.spec, ip) is not None]
        assert list(self.allocator.excluded()) == never
        assert self.allocator.capacity == len(range_of(self.spec)) - len(never)
        assert self.allocator.used + self.allocator.available == self.allocator.capacity


AllocatorMachine.TestCase.settings = settings(
    AllocatorMachine.TestCase.settings, max_examples=100, stateful_step_count=40
)
test_allocator_matches_model = AllocatorMachine.TestCase
