"""What an IPPool's address range is: subnet, range, excludes, and their rules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError

from kvip.ipam._errors import ExclusionReason, InvalidPool

# RFC 3021: a /31 has no network or broadcast address (both are hosts), and a
# /32 is a single host; only shorter prefixes reserve the two ends.
_LONGEST_PREFIX_WITH_BROADCAST = 30


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolSpec:
    """The address part of an IPPool's `ipv4config`.

    Constructing one validates it: an invalid `PoolSpec` cannot exist, and
    `InvalidPool` lists every problem found, not just the first.
    """

    subnet: IPv4Network
    start: IPv4Address
    end: IPv4Address
    server_ip: IPv4Address | None = None
    router: IPv4Address | None = None
    exclude: tuple[IPv4Address, ...] = ()

    def __post_init__(self) -> None:
        exclude: object = self.exclude
        if isinstance(exclude, str | bytes) or not isinstance(exclude, Iterable):
            raise InvalidPool(f"exclude must be a list of IPv4 addresses, not {exclude!r}")
        # Accept any iterable of addresses but store a tuple, so the spec stays
        # hashable and immutable.
        if not isinstance(exclude, tuple):
            object.__setattr__(self, "exclude", tuple(exclude))
        problems = _problems(self)
        if problems:
            raise InvalidPool("; ".join(problems))

    @classmethod
    def parse(
        cls,
        *,
        subnet: str,
        start: str,
        end: str,
        server_ip: str | None = None,
        router: str | None = None,
        exclude: Iterable[str] = (),
    ) -> PoolSpec:
        """Build a spec from the text of an IPPool, or raise `InvalidPool`.

        A subnet written with host bits set, in the interface form that
        `ip addr add 172.16.0.2/16` users are used to, is accepted and taken as
        its network (172.16.0.0/16): the meaning is unambiguous, and refusing
        it would stop an IPPool that an operator considers correct. A caller
        that wants to warn about it can compare `str(spec.subnet)` with the text.
        """
        problems: list[str] = []
        net = _parse_network(subnet, problems)
        first = _parse_address("pool start", start, problems)
        last = _parse_address("pool end", end, problems)
        server = None if server_ip is None else _parse_address("server IP", server_ip, problems)
        gateway = None if router is None else _parse_address("router", router, problems)
        excluded: list[IPv4Address] = []
        if isinstance(exclude, str | bytes) or not isinstance(exclude, Iterable):
            problems.append(f"exclude must be a list of IPv4 addresses, not {exclude!r}")
        else:
            for index, text in enumerate(exclude):
                address = _parse_address(f"exclude entry {index}", text, problems)
                if address is not None:
                    excluded.append(address)
        if problems or net is None or first is None or last is None:
            raise InvalidPool("; ".join(problems))
        return cls(
            subnet=net,
            start=first,
            end=last,
            server_ip=server,
            router=gateway,
            exclude=tuple(excluded),
        )

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
        # Weakest reason first, so that a stronger one for the same address wins.
        candidates = [(address, ExclusionReason.SPEC) for address in self.exclude]
        candidates += [
            (address, reason)
            for address, reason in (
                (self.router, ExclusionReason.ROUTER),
                (self.server_ip, ExclusionReason.SERVER_IP),
            )
            if address is not None
        ]
        found = {
            address: reason for address, reason in candidates if self.start <= address <= self.end
        }
        return dict(sorted(found.items()))

    def boundary_reason(self, ip: IPv4Address) -> ExclusionReason | None:
        """NETWORK or BROADCAST if `ip` is one of the subnet's reserved ends."""
        if not self.has_broadcast:
            return None
        if ip == self.subnet.network_address:
            return ExclusionReason.NETWORK
        if ip == self.subnet.broadcast_address:
            return ExclusionReason.BROADCAST
        return None


def _parse_network(text: object, problems: list[str]) -> IPv4Network | None:
    if not isinstance(text, str):
        problems.append(f"subnet must be text such as 172.16.0.0/16, not {text!r}")
        return None
    try:
        return IPv4Network(text.strip(), strict=False)
    except (AddressValueError, NetmaskValueError, ValueError) as exc:
        problems.append(f"subnet {text!r} is not an IPv4 subnet such as 172.16.0.0/16: {exc}")
        return None


def _parse_address(what: str, text: object, problems: list[str]) -> IPv4Address | None:
    # ipaddress would take an int as an address; YAML can hand us one.
    if not isinstance(text, str):
        problems.append(f"{what} must be an IPv4 address as text, not {text!r}")
        return None
    try:
        return IPv4Address(text.strip())
    except AddressValueError as exc:
        problems.append(f"{what} {text!r} is not an IPv4 address: {exc}")
        return None


def _problems(spec: PoolSpec) -> list[str]:
    if not isinstance(spec.subnet, IPv4Network):
        return [f"subnet must be an IPv4 network, not {spec.subnet!r}"]
    problems: list[str] = []
    named: list[tuple[str, object]] = [("pool start", spec.start), ("pool end", spec.end)]
    optional = [("server IP", spec.server_ip), ("router", spec.router)]
    named += [(what, value) for what, value in optional if value is not None]
    for what, value in named:
        if not isinstance(value, IPv4Address):
            problems.append(f"{what} must be an IPv4 address, not {value!r}")
        elif value not in spec.subnet:
            problems.append(f"{what} {value} is outside the subnet {spec.subnet}")
    problems += [
        f"exclude entry {index} {value!r} is not an IPv4 address"
        for index, value in enumerate(spec.exclude)
        if not isinstance(value, IPv4Address)
    ]
    if problems:
        return problems
    if spec.start > spec.end:
        problems.append(f"pool start {spec.start} is after pool end {spec.end}")
    elif spec.has_broadcast:
        if spec.start == spec.subnet.network_address:
            problems.append(
                f"pool start {spec.start} is the network address of {spec.subnet}; "
                f"start at {spec.start + 1} or later"
            )
        if spec.end == spec.subnet.broadcast_address:
            problems.append(
                f"pool end {spec.end} is the broadcast address of {spec.subnet}; "
                f"end at {spec.end - 1} or earlier"
            )
    return problems
