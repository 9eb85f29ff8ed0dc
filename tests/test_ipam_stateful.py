"""The allocators against a plain model: a dict address -> owner and the spec.

Three machines share the rules: IPv4 and IPv6 pools in small subnets (/24 to
/32, /120 to /128), where collisions, exclusions and exhaustion are common,
and IPv6 pools in whole /64s, where the range cannot be listed and the model
finds the lowest free address by walking up from the start past what is held
or excluded. The model derives what is assignable from the spec's text-level
rules, not from the allocator's code.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from kvip.ipam import (
    AddressExcluded,
    AddressOutOfRange,
    AddressTaken,
    Allocator,
    Allocator6,
    ExclusionReason,
    IpamError,
    Owner,
    PoolExhausted,
    PoolSpec,
    PoolSpec6,
)

Address = IPv4Address | IPv6Address
Spec = PoolSpec | PoolSpec6

OWNERS = st.sampled_from(
    [Owner("a"), Owner("b"), Owner("c"), Owner("default/vm1 [52:54:00:aa:bb:cc]")]
)
# Small subnets inside 198.18.0.0/22 or 2001:db8::/118, so that a reconfigure
# can move to a neighbouring or overlapping subnet.
BASE = int(IPv4Address("198.18.0.0"))
BASE6 = int(IPv6Address("2001:db8::"))
# Whole /64s: 2001:db8:0:0::/64 to 2001:db8:0:3::/64.
SLASH_64 = 2**64
# A range this small is listed address by address to check the exclusions.
LISTED = 4096
LINK_LOCAL = st.integers(1, 2**64 - 1).map(lambda n: IPv6Address(int(IPv6Address("fe80::")) + n))


@st.composite
def subnets(draw: st.DrawFn) -> IPv4Network:
    prefix = draw(st.integers(24, 32))
    block = draw(st.integers(0, 2 ** (32 - 22) // 2 ** (32 - prefix) - 1))
    return IPv4Network((BASE + block * 2 ** (32 - prefix), prefix))


@st.composite
def subnets6(draw: st.DrawFn) -> IPv6Network:
    prefix = draw(st.integers(120, 128))
    block = draw(st.integers(0, 2 ** (128 - 118) // 2 ** (128 - prefix) - 1))
    return IPv6Network((BASE6 + block * 2 ** (128 - prefix), prefix))


@st.composite
def slash_64s(draw: st.DrawFn) -> IPv6Network:
    return IPv6Network((BASE6 + draw(st.integers(0, 3)) * SLASH_64, 64))


def has_broadcast(subnet: IPv4Network) -> bool:
    return subnet.prefixlen <= 30


def has_anycast(subnet: IPv6Network) -> bool:
    """RFC 4291 2.6.1, RFC 6164: the first address of all but a /127 and a /128."""
    return subnet.prefixlen <= 126


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


@st.composite
def specs6(draw: st.DrawFn, subnet: IPv6Network) -> PoolSpec6:
    """A range in `subnet`: up to 300 addresses, or in a /64 up to all of it."""
    first, last = int(subnet.network_address), int(subnet.broadcast_address)
    low = first + 1 if has_anycast(subnet) else first
    start = draw(st.integers(low, min(last, low + 300)) | st.integers(low, last))
    longest = draw(st.sampled_from([3, 20, 300, last]))
    end = draw(st.sampled_from([min(last, start + longest), last]) | st.integers(start, last))
    # Excludes near the start meet lowest-free; the others anywhere around.
    near = st.integers(start - 4, min(last, start + 80)) | st.integers(first - 4, last + 4)
    in_subnet = st.integers(first, last) | st.integers(start, min(last, start + 80))
    addresses = st.builds(IPv6Address, near)
    nearby = st.builds(IPv6Address, in_subnet)
    return PoolSpec6(
        subnet=subnet,
        start=IPv6Address(start),
        end=IPv6Address(end),
        server_ip=draw(st.none() | nearby | LINK_LOCAL),
        router=draw(st.none() | nearby | LINK_LOCAL),
        exclude=tuple(draw(st.lists(addresses, max_size=6))),
    )


def model_reason(spec: Spec, ip: Address) -> ExclusionReason | None:
    """Why `ip` can never be handed out under `spec`, per the pool rules."""
    subnet = spec.subnet
    if isinstance(subnet, IPv4Network) and has_broadcast(subnet):
        if ip == subnet.network_address:
            return ExclusionReason.NETWORK
        if ip == subnet.broadcast_address:
            return ExclusionReason.BROADCAST
    if isinstance(subnet, IPv6Network) and has_anycast(subnet) and ip == subnet.network_address:
        return ExclusionReason.SUBNET_ROUTER_ANYCAST
    if ip == spec.server_ip:
        return ExclusionReason.SERVER_IP
    if ip == spec.router:
        return ExclusionReason.ROUTER
    if ip in spec.exclude:
        return ExclusionReason.SPEC
    return None


def in_range(spec: Spec, ip: Address) -> bool:
    return ip.version == spec.start.version and int(spec.start) <= int(ip) <= int(spec.end)


def model_assignable(spec: Spec, ip: Address) -> bool:
    return in_range(spec, ip) and model_reason(spec, ip) is None


def range_size(spec: Spec) -> int:
    return int(spec.end) - int(spec.start) + 1


def never_assignable(spec: Spec) -> list[Address]:
    """The in-range addresses with a reason, in address order."""
    if range_size(spec) <= LISTED:
        make = type(spec.start)
        listed = (make(n) for n in range(int(spec.start), int(spec.end) + 1))
        return [ip for ip in listed if model_reason(spec, ip) is not None]
    # Too many to list: only the addresses the spec names can have a reason.
    named: set[Address] = {*spec.exclude, spec.subnet.network_address}
    named |= {ip for ip in (spec.server_ip, spec.router) if ip is not None}
    if isinstance(spec.subnet, IPv4Network):
        named.add(spec.subnet.broadcast_address)
    return sorted(
        (ip for ip in named if in_range(spec, ip) and model_reason(spec, ip) is not None),
        key=int,
    )


class AllocatorMachine(RuleBasedStateMachine):
    """The IPv4 allocator; the subclasses below swap in the IPv6 family."""

    allocator: Any
    spec: Spec
    model: dict[Address, Owner]

    def address(self, value: int) -> Address:
        return IPv4Address(value)

    def make_allocator(self, spec: Any) -> Any:
        return Allocator(spec)

    def draw_subnet(self, data: st.DataObject) -> IPv4Network | IPv6Network:
        return data.draw(subnets())

    def draw_spec(self, data: st.DataObject, subnet: Any) -> Spec:
        return data.draw(specs(subnet))

    @initialize(data=st.data())
    def create(self, data: st.DataObject) -> None:
        self.spec = self.draw_spec(data, self.draw_subnet(data))
        self.allocator = self.make_allocator(self.spec)
        self.model = {}

    def candidates(self) -> st.SearchStrategy[Address]:
        # Around the range, so requests hit the edges, the subnet ends and beyond.
        low, high = int(self.spec.start), int(self.spec.end)
        near = st.integers(max(0, low - 3), high + 3).map(self.address)
        if high - low > LISTED:
            # A /64 range: its two ends, its subnet's first address, anywhere.
            ends = st.integers(low - 3, low + 80) | st.integers(high - 3, high + 3)
            anywhere = st.integers(int(self.spec.subnet.network_address), high + 3)
            near = (ends | anywhere).map(self.address)
        held = st.sampled_from(sorted(self.model)) if self.model else near
        named = st.sampled_from([*self.spec.exclude, self.spec.subnet.network_address])
        return near | held | named

    def expected_error(self, owner: Owner, ip: Address) -> type[IpamError] | None:
        holder = self.model.get(ip)
        if holder is not None:
            return None if holder == owner else AddressTaken
        if not in_range(self.spec, ip):
            # The subnet's reserved ends are outside every valid range, and named as such.
            boundary = model_reason(self.spec, ip) in (
                ExclusionReason.NETWORK,
                ExclusionReason.BROADCAST,
                ExclusionReason.SUBNET_ROUTER_ANYCAST,
            )
            return AddressExcluded if boundary else AddressOutOfRange
        return None if model_reason(self.spec, ip) is None else AddressExcluded

    def check_request(self, owner: Owner, ip: Address, *, via_allocate: bool) -> None:
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

    def lowest_free(self) -> Address | None:
        # Walks past held and never-assignable addresses only: short even in a /64.
        for n in range(int(self.spec.start), int(self.spec.end) + 1):
            ip = self.address(n)
            if ip not in self.model and model_reason(self.spec, ip) is None:
                return ip
        return None

    @rule(owner=OWNERS)
    def allocate(self, owner: Owner) -> None:
        free = self.lowest_free()
        try:
            ip = self.allocator.allocate(owner)
        except PoolExhausted:
            assert free is None
            return
        assert ip == free, "allocation is lowest-free"
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
        mine = sorted((ip for ip, holder in self.model.items() if holder == owner), key=int)
        assert self.allocator.release_owner(owner) == tuple(mine)
        for ip in mine:
            del self.model[ip]

    @rule(data=st.data(), move=st.booleans())
    def reconfigure(self, data: st.DataObject, move: bool) -> None:
        subnet = self.draw_subnet(data) if move else self.spec.subnet
        new_spec = self.draw_spec(data, subnet)
        expected = sorted(
            ((ip, owner) for ip, owner in self.model.items() if not model_assignable(new_spec, ip)),
            key=lambda pair: int(pair[0]),
        )
        assert self.allocator.reconfigure(new_spec) == tuple(expected)
        for ip, _ in expected:
            del self.model[ip]
        self.spec = new_spec

    @invariant()
    def matches_the_model(self) -> None:
        in_order = sorted(self.model.items(), key=lambda pair: int(pair[0]))
        assert list(self.allocator.allocations()) == in_order
        assert self.allocator.used == len(self.model)
        for owner in {*self.model.values(), Owner("a")}:
            mine = sorted((ip for ip, holder in self.model.items() if holder == owner), key=int)
            assert self.allocator.addresses_of(owner) == tuple(mine)

    @invariant()
    def only_assignable_addresses_are_held(self) -> None:
        for ip in self.model:
            assert model_assignable(self.spec, ip), ip
            assert self.allocator.is_assignable(ip)
            assert self.allocator.owner_of(ip) == self.model[ip]

    @invariant()
    def counts_add_up(self) -> None:
        never = never_assignable(self.spec)
        assert list(self.allocator.excluded()) == never
        for ip in never:
            assert self.allocator.exclusion_reason(ip) is model_reason(self.spec, ip)
        assert self.allocator.capacity == range_size(self.spec) - len(never)
        assert self.allocator.used + self.allocator.available == self.allocator.capacity


class Allocator6Machine(AllocatorMachine):
    """IPv6 pools in small subnets: exhaustion and every address in view."""

    def address(self, value: int) -> Address:
        return IPv6Address(value)

    def make_allocator(self, spec: Any) -> Any:
        return Allocator6(spec)

    def draw_subnet(self, data: st.DataObject) -> IPv4Network | IPv6Network:
        return data.draw(subnets6())

    def draw_spec(self, data: st.DataObject, subnet: Any) -> Spec:
        return data.draw(specs6(subnet))


class Allocator6Slash64Machine(Allocator6Machine):
    """IPv6 pools in whole /64s: lowest-free and exclusions where nothing can be listed."""

    def draw_subnet(self, data: st.DataObject) -> IPv4Network | IPv6Network:
        return data.draw(slash_64s())


def _configured(machine: type[AllocatorMachine]) -> Any:
    machine.TestCase.settings = settings(
        machine.TestCase.settings, max_examples=100, stateful_step_count=40
    )
    return machine.TestCase


test_allocator_matches_model = _configured(AllocatorMachine)
test_allocator6_matches_model = _configured(Allocator6Machine)
test_allocator6_in_a_slash_64_matches_model = _configured(Allocator6Slash64Machine)
