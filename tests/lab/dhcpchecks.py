"""What the real-client DHCP tests (test_dhcp_real_clients, test_dhcp_pools_on_the_wire)
share: labs, plugging clients in, assertions on the leases they get.

Test modules wrap ``open_lab`` and ``dhclient_runner`` in their own fixtures.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from kvip.actors import PoolState
from protocol import MessageType
from tests.lab import netlab
from tests.lab.dhcpclients import Lease, NoLeaseError, Route, run_dhclient
from tests.lab.dhcpsend import wait_for_wire
from tests.lab.netlab import Client, Lab
from tests.lab.objects import FULL_DNS, FULL_ROUTER
from tests.lab.poolrig import PoolRig

PREFIX = "kvd"
SERVER = IPv4Address("198.18.0.1")
MASK = IPv4Address("255.255.0.0")
#: What a pool with `options="full"` (tests.lab.objects.ippool) sends.
ROUTER = IPv4Address(FULL_ROUTER)
DNS = tuple(IPv4Address(a) for a in FULL_DNS)
#: Short client timeouts: a client that gets no answer gives up fast.
SILENT = 5


def need(*tools: str) -> None:
    if not netlab.is_root():
        pytest.skip("needs root for network namespaces")
    for tool in tools:
        if shutil.which(tool) is None and not os.path.exists(tool):
            pytest.skip(f"{tool} is not installed (scripts/install-system-deps.sh)")


@contextlib.contextmanager
def open_lab() -> Iterator[Lab]:
    """A lab for one test (skipped without root), removed afterwards."""
    need("ip")
    with netlab.netlab(PREFIX) as lab:
        yield lab


def dhclient_runner(workdir: Path) -> Callable[..., Lease]:
    """run_dhclient with its files under ``workdir`` (a test's tmp_path): the
    dhclient daemon the runner stops may still write there as the runner returns,
    which makes a TemporaryDirectory's removal fail (pytest removes tmp_path later)."""
    calls = itertools.count()

    def run(client: Client, **kwargs: Any) -> Lease:
        return run_dhclient(client, workdir=workdir / f"dhclient-{next(calls)}", **kwargs)

    return run


def plug(lab: Lab, hwaddr: str, *, port: str | None = None) -> Client:
    """A client namespace whose wire already forwards: some tests send one packet
    and count it, and a client's first DISCOVER counts too."""
    client = lab.add_client(hwaddr, port=port)
    wait_for_wire(lab, client)
    return client


def counts(state: PoolState) -> dict[str, Any]:
    """The pool's counters (nested dicts of ints), typed for indexing."""
    return state.counters


def mac(n: int) -> str:
    return f"52:54:00:00:{n // 256:02x}:{n % 256:02x}"


def assert_full_lease(lease: Lease, ip: str | None) -> None:
    assert ip is not None and lease.ip == IPv4Address(ip), lease
    assert lease.mask == MASK, lease
    assert lease.router == (ROUTER,), lease
    assert lease.dns == DNS, lease
    assert lease.domain == "lab.example", lease
    assert lease.search == ("lab.example", "example"), lease
    assert lease.server_id == SERVER, lease
    assert (lease.lease_time, lease.t1, lease.t2) == (600, 300, 525), lease
    assert lease.mtu == 1450, lease
    # RFC 3442: clients ignore option 3 when 121 is present, so 121 carries the default route.
    assert set(lease.routes) == {
        Route(IPv4Network("10.0.0.0/8"), IPv4Address("198.18.0.253")),
        Route(IPv4Network("0.0.0.0/0"), ROUTER),
    }, lease


def requests_with_ciaddr(rig: PoolRig, pool: str, ip: IPv4Address) -> list[str]:
    """The IP destinations of the REQUESTs with ciaddr ``ip`` the pool received."""
    return [
        d.address
        for d, m in rig.taps[pool].received_messages()
        if m.message_type == MessageType.REQUEST and m.ciaddr == ip
    ]


def no_lease(runner: Callable[..., Lease], client: Client) -> None:
    """Run a client that must get nothing; it gives up after SILENT seconds."""
    with pytest.raises(NoLeaseError):
        runner(client, timeout=SILENT)
