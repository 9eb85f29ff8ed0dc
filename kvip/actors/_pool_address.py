"""What a PoolActor answers as, and what it says about its own wire: its
options with the NTP servers given by name resolved (in the background), the
server identifier (this replica's address on the pool's interface), the
replicas' addresses it must never hand out, an interface with no address to
answer from, and DHCP from MACs it has no reservation for.

A mixin of PoolActor (its fields are named below), in the trio thread only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Address

import trio

from kvip.actors._ntp import Resolver, resolve_ntp_names
from kvip.actors._pool_book import PoolBook
from kvip.serving import PoolConfig, server_identity

log = logging.getLogger("kvip.actors._pool")


class PoolAddress:
    # (No __slots__ here: the mixin sets PoolActor's fields, which mypy refuses
    # through an empty __slots__; PoolActor's own slots still hold them.)
    config: PoolConfig
    book: PoolBook
    on_change: Callable[[], None] | None
    on_warning: Callable[[str, str], None] | None
    interface_address: IPv4Address | None
    no_address: str | None
    address_problems: dict[IPv4Address, str]
    _replicas: frozenset[IPv4Address]
    _ntp_applied: tuple[IPv4Address, ...]
    _ntp_resolved: tuple[tuple[str, ...], tuple[IPv4Address, ...]]
    _nursery: trio.Nursery | None
    _lock: threading.Lock
    resolve: Resolver

    # -- NTP servers given by name ----------------------------------------------------

    def _resolve_ntp_later(self) -> None:
        """Resolve the configuration's NTP names in the background: a slow resolver
        must delay neither the pool's start nor a Reconfigure (nor its caller)."""
        names = self.config.ntp_names
        known_names, known = self._ntp_resolved
        if names == known_names:
            self._set_options(known)
            return
        self._set_options(())
        if names and self._nursery is not None:
            self._nursery.start_soon(self._resolve_ntp, self.config)

    async def _resolve_ntp(self, config: PoolConfig) -> None:
        resolved = await resolve_ntp_names(self.config.name, config.ntp_names, self.resolve)
        if self.config is not config:
            return  # reconfigured meanwhile: that configuration resolves its own
        self._ntp_resolved = (config.ntp_names, resolved)
        self._set_options(resolved)

    def _set_options(self, resolved: tuple[IPv4Address, ...]) -> None:
        self._ntp_applied = resolved
        options = self.config.options
        if options is None:
            return  # an IPv6-only pool
        ntp = options.ntp + tuple(a for a in resolved if a not in options.ntp)
        server = server_identity(options.server_ip, options.subnet, self.interface_address)
        with self._lock:
            if self.book.responder is not None:
                self.book.responder.set_options(replace(options, ntp=ntp, server_ip=server))

    def _usable(self, found: IPv4Address | None) -> bool:
        """Whether `found` (the interface's address) is one to answer from: inside
        the pool's subnet. If not, `no_address` says why (status, log, Event)."""
        options = self.config.options
        if options is None:
            return True  # an IPv6-only pool: DHCPv6 answers from a link-local address
        if server_identity(options.server_ip, options.subnet, found) == found:
            if self.no_address is not None:
                log.info(
                    "pool %s: %s has %s now: serving",
                    self.config.name,
                    self.config.interface,
                    found,
                )
            self.no_address = None
            return True
        shown = f"its address is {found}" if found is not None else "it has no IPv4 address"
        problem = (f"{self.config.interface} has no address in {options.subnet} ({shown}): "
                   "kvip answers only from an address of its own in the pool's subnet; give "
                   "the interface one (kvip's NetworkAttachmentDefinition)")  # fmt: skip
        if problem != self.no_address:
            self.no_address = problem
            log.error("pool %s: not serving DHCP: %s", self.config.name, problem)
            if self.on_warning is not None:
                self.on_warning("NoAddress", problem)
            if self.on_change is not None:
                self.on_change()
        return False

    def _found_address(self, found: IPv4Address | None) -> None:
        """Answer as the address this replica has on the pool's interface (each
        replica its own), and make sure no VM is ever given it."""
        self.interface_address = found
        self._set_options(self._ntp_applied)
        self._hold_replicas()

    def _hold_replicas(self) -> dict[IPv4Address, str]:
        own = self.interface_address
        addresses = set(self._replicas)
        options = self.config.options
        if own is not None and options is not None and own in options.subnet:
            addresses.add(own)
        with self._lock:
            problems = self.book.hold_replica_addresses(addresses)
        for ip in sorted(problems.keys() - self.address_problems.keys()):
            log.error("pool %s: %s", self.config.name, problems[ip])
        if problems != self.address_problems:
            self.address_problems = problems
            if self.on_change is not None:
                self.on_change()
        return dict(problems)

    def _unknown_clients(self, macs: list[str]) -> None:
        """First sightings of MACs without a reservation (within the log's budget):
        an Event on the IPPool, and its status counts them. Runs in the trio
        thread, called by the packet thread: it must never raise."""
        try:
            for mac in macs:
                if self.on_warning is not None:
                    self.on_warning("UnknownClient", f"DHCP from {mac}, which has no "
                                    "reservation in this pool: not answered")  # fmt: skip
            if self.on_change is not None:
                self.on_change()
        except Exception:
            log.exception("pool %s: reporting unknown clients failed", self.config.name)
