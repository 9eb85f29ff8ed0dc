"""What an IPPool's address range is: subnet, range, excludes, and their rules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from typing import Protocol, TypeVar

from kvip.ipam._errors import AnyAddress, ExclusionReason, InvalidPool

_A = TypeVar("_A", IPv4Address, IPv6Address)
_A_co = TypeVar("_A_co", IPv4Address, IPv6Address, covariant=True)

# RFC 3021: a /31 has no network or broadcast address (both are hosts), and a
# /32 is a single host; only shorter prefixes reserve the two ends.
_LONGEST_PREFIX_WITH_BROADCAST = 30

# Problems are named by the IPPool field that holds the value, so that the
# message in a pool's status points at what to edit.
SUBNET = "spec.ipv4config.subnet"
START = "spec.ipv4config.pool.start"
END = "spec.ipv4config.pool.end"
SERVER_IP = "spec.ipv4config.serverip"
ROUTER = "spec.ipv4config.router"
EXCLUDE = "spec.ipv4config.pool.exclude"


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolSpec:
    """The address part of an IPPool's `ipv4config`: the allocator's input.

    Constructing one checks the rules that span fields (the range, server IP
    and router inside the subnet, start <= end, no network or broadcast
    address in the range): an invalid `PoolSpec` cannot exist, and
    `InvalidPool` lists every problem found, named by IPPool field. Reading
    an IPPool's text is `kvip.serving.parse_ippool`'s job, the one parser.
    """

    subnet: IPv4Network
    start: IPv4Address
    end: IPv4Address
    server_ip: IPv4Address | None = None
    router: IPv4Address | None = None
    exclude: tuple[IPv4Address, ...] = ()

    def __post_init__(self) -> None:
        store_exclude_as_tuple(self, self.exclude, field=EXCLUDE, family="IPv4")
        problems = _problems(self)
        if problems:
            raise InvalidPool("; ".join(problems))

    @property
    def has_broadcast(self) -> bool:
        """Whether the subnet reserves a network and a broadcast address."""
        return self.subnet.prefixlen <= _LONGEST_PREFIX_WITH_BROADCAST

    @property
    def size(self) -> int:
        """Addresses in [start, end], assignable or not."""
        return int(self.end) - int(self.start) + 1

    def exclusions(self) -> dict[IPv4Address, ExclusionReason]:
        """In-range addresses that are never handed out and why, in address order.

        The server IP and the router are always excluded, listed in `exclude`
        or not. Excludes outside the range are harmless and left out. The
        network and broadcast addresses never appear: validation keeps them
        out of the range.
        """
        return exclusions_in_range(self)

    def boundary_reason(self, ip: AnyAddress) -> ExclusionReason | None:
        """NETWORK or BROADCAST if `ip` is one of the subnet's reserved ends.

        An address of the other family never is.
        """
        if not self.has_broadcast:
            return None
        if ip == self.subnet.network_address:
            return ExclusionReason.NETWORK
        if ip == self.subnet.broadcast_address:
            return ExclusionReason.BROADCAST
        return None


class _Range(Protocol[_A_co]):
    """What both families' specs share: the fields that say what is excluded."""

    @property
    def start(self) -> _A_co: ...
    @property
    def end(self) -> _A_co: ...
    @property
    def server_ip(self) -> _A_co | None: ...
    @property
    def router(self) -> _A_co | None: ...
    @property
    def exclude(self) -> tuple[_A_co, ...]: ...


def exclusions_in_range(spec: _Range[_A]) -> dict[_A, ExclusionReason]:
    """`exclusions()` of a spec of either family."""
    # Weakest reason first, so that a stronger one for the same address wins.
    candidates = [(address, ExclusionReason.SPEC) for address in spec.exclude]
    candidates += [
        (address, reason)
        for address, reason in (
            (spec.router, ExclusionReason.ROUTER),
            (spec.server_ip, ExclusionReason.SERVER_IP),
        )
        if address is not None
    ]
    start, end = spec.start, spec.end
    found = {address: reason for address, reason in candidates if start <= address <= end}
    return dict(sorted(found.items()))


def store_exclude_as_tuple(spec: object, exclude: object, *, field: str, family: str) -> None:
    """Accept any iterable of addresses as a spec's `exclude` but store a tuple,
    so that the spec stays hashable and immutable."""
    if isinstance(exclude, str | bytes) or not isinstance(exclude, Iterable):
        raise InvalidPool(f"{field} must be a list of {family} addresses, not {exclude!r}")
    if not isinstance(exclude, tuple):
        object.__setattr__(spec, "exclude", tuple(exclude))


def _problems(spec: PoolSpec) -> list[str]:
    if not isinstance(spec.subnet, IPv4Network):
        return [f"{SUBNET} must be an IPv4 network, not {spec.subnet!r}"]
    problems: list[str] = []
    named: list[tuple[str, object]] = [(START, spec.start), (END, spec.end)]
    optional = [(SERVER_IP, spec.server_ip), (ROUTER, spec.router)]
    named += [(field, value) for field, value in optional if value is not None]
    for field, value in named:
        if not isinstance(value, IPv4Address):
            problems.append(f"{field} must be an IPv4 address, not {value!r}")
        elif value not in spec.subnet:
            problems.append(f"{field} {value} is outside the subnet {spec.subnet}")
    problems += [
        f"{EXCLUDE}[{index}] {value!r} is not an IPv4 address"
        for index, value in enumerate(spec.exclude)
        if not isinstance(value, IPv4Address)
    ]
    if problems:
        return problems
    if spec.start > spec.end:
        problems.append(f"{START} {spec.start} is after {END} {spec.end}")
    elif spec.has_broadcast:
        if spec.start == spec.subnet.network_address:
            problems.append(
                f"{START} {spec.start} is the network address of {spec.subnet}; "
                f"start at {spec.start + 1} or later"
            )
        if spec.end == spec.subnet.broadcast_address:
            problems.append(
                f"{END} {spec.end} is the broadcast address of {spec.subnet}; "
                f"end at {spec.end - 1} or earlier"
            )
    return problems
