"""Replica heartbeats and the directory that reads them, against the real API server.

Each replica keeps a Lease of its own whose `kvip.io/serving` annotation says
which address it answers with on which IPPool (`ReplicaHeartbeat`); the leader
reads them (`ReplicaDirectory`) to show who serves a pool and never to hand out
a replica's address.

Tests whose subject is time (a Lease that stops being renewed goes stale, litter
is deleted after ten minutes, outages are logged once) run under trio's
MockClock, mostly with hand-written Leases, and wait by counting requests (see
`CountingLeases`), so their instants are exact. The heartbeats seen by a
directory run on the real clock with short periods.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from typing import Any

import pytest
import trio
import trio.testing

from kvip.actors import ReplicaCard, ReplicaDirectory, ReplicaHeartbeat
from kvip.k8s import Body, Conflict, Kube, Leases, NotFound, Unavailable
from tests.lab.apiserver import ApiServer

pytestmark = [pytest.mark.apiserver]

LEASE = "kvip"
PERIOD = 0.5


@pytest.fixture
def kube(apiserver: ApiServer) -> Iterator[Kube]:
    kube = Kube.connect(kubeconfig=str(apiserver.kubeconfig))
    yield kube
    kube.close()


@pytest.fixture
def leases(kube: Kube) -> Iterator[Leases]:
    leases = Leases(kube)
    yield leases
    leases.close()


def lease_body(
    name: str,
    *,
    holder: str,
    annotations: dict[str, str],
    renewed: datetime,
    duration: int,
    replica_of: str = LEASE,
) -> Body:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/name": "kvip", "kvip.io/replica-of": replica_of},
            "annotations": annotations,
        },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    }


def serving(**pools: str) -> dict[str, str]:
    return {"kvip.io/serving": json.dumps(pools)}


async def until(condition: Callable[[], bool], *, what: str, timeout: float = 30) -> None:
    """Real clock: poll until `condition()`, failing after `timeout` seconds."""
    with trio.move_on_after(timeout):
        while not condition():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"waited {timeout:g} s for {what}")


class CountingLeases(Leases):
    """The real Lease API, counting requests, for tests under the MockClock.

    Such a test must not wait with a deadline of its own: while a request runs
    in its worker thread, the mock clock would jump to that deadline. So it
    waits for the n-th request to begin (`until_call(n)`): the requests before
    it have been answered and acted on by then, as each actor makes one request
    at a time. A test whose condition never comes fails after `limit` requests
    instead of hanging. While `down`, every request fails as to a stopped API
    server."""

    def __init__(self, kube: Kube, *, limit: int = 1000) -> None:
        super().__init__(kube)
        self.calls = 0
        self.limit = limit
        self.down = False
        self._waits: list[tuple[int, trio.Event]] = []

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Body:
        self.calls += 1
        if self.calls > self.limit:
            raise AssertionError(f"what the test waits for did not come in {self.limit} requests")
        with contextlib.suppress(trio.RunFinishedError):
            trio.from_thread.run_sync(self._wake)
        if self.down:
            raise Unavailable("the API server is down (CountingLeases)")
        return super()._call(fn, *args, **kwargs)

    def _wake(self) -> None:
        for count, event in self._waits:
            if self.calls >= count:
                event.set()

    async def until_call(self, count: int) -> None:
        """Return once request number `count` has begun."""
        if self.calls >= count:
            return
        event = trio.Event()
        self._waits.append((count, event))
        await event.wait()


@pytest.fixture
def counting(kube: Kube) -> Iterator[Callable[..., CountingLeases]]:
    made: list[CountingLeases] = []

    def make(**kwargs: Any) -> CountingLeases:
        made.append(CountingLeases(kube, **kwargs))
        return made[-1]

    yield make
    for leases in made:
        leases.close()


def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def test_leases_are_listed_by_label_and_deleted(leases: Leases, namespace: str) -> None:
    now = datetime.now(UTC)
    for name, replica_of in (("a", "kvip"), ("b", "kvip"), ("c", "other")):
        body = lease_body(name, holder=name, annotations={}, renewed=now, duration=5,
                          replica_of=replica_of)  # fmt: skip
        leases.create(namespace, body)

    listed = leases.list(namespace, "kvip.io/replica-of=kvip")
    assert sorted(item["metadata"]["name"] for item in listed) == ["a", "b"]
    assert leases.list(namespace, "kvip.io/replica-of=nobody") == []

    leases.delete(namespace, "a")
    with pytest.raises(NotFound):
        leases.get(namespace, "a")
    with pytest.raises(NotFound):
        leases.delete(namespace, "a")

    b = leases.get(namespace, "b")
    renewed = {**b, "spec": {**b["spec"], "leaseDurationSeconds": 6}}
    leases.replace(namespace, renewed)  # a new resourceVersion
    with pytest.raises(Conflict):
        leases.delete(namespace, "b", resource_version=b["metadata"]["resourceVersion"])
    leases.delete(
        namespace, "b", resource_version=leases.get(namespace, "b")["metadata"]["resourceVersion"]
    )
    assert [item["metadata"]["name"] for item in leases.list(namespace, "kvip.io/replica-of")] == [
        "c"
    ]


def test_a_directory_sees_every_heartbeat_and_its_changes(
    kube: Kube, leases: Leases, namespace: str
) -> None:
    cards = {"kvip-a": {"pool-1": "198.18.0.2", "pool-2": "198.18.1.2"},
             "kvip-b": {"pool-1": "198.18.0.3"}}  # fmt: skip
    changes: list[dict[str, ReplicaCard]] = []
    ready = {"kvip-a": True, "kvip-b": True}

    def heartbeat(replica: str) -> ReplicaHeartbeat:
        return ReplicaHeartbeat(kube, namespace=namespace, lease_name=LEASE, replica=replica,
                                card=lambda: cards[replica], ready=lambda: ready[replica],
                                period=PERIOD)  # fmt: skip

    directory = ReplicaDirectory(kube, namespace=namespace, lease_name=LEASE, period=PERIOD,
                                 on_change=lambda: changes.append(directory.cards()))  # fmt: skip

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(heartbeat("kvip-a").run)
            nursery.start_soon(heartbeat("kvip-b").run)
            nursery.start_soon(directory.run)
            await until(lambda: len(directory.cards()) == 2, what="both cards")
            assert directory.cards() == {
                "kvip-a": ReplicaCard("kvip-a", cards["kvip-a"]),
                "kvip-b": ReplicaCard("kvip-b", cards["kvip-b"]),
            }
            assert directory.addresses_for("pool-1") == {
                "kvip-a": IPv4Address("198.18.0.2"),
                "kvip-b": IPv4Address("198.18.0.3"),
            }
            assert directory.addresses_for("pool-2") == {"kvip-a": IPv4Address("198.18.1.2")}
            assert directory.addresses_for("pool-3") == {}

            lease = leases.get(namespace, "kvip-replica-kvip-a")
            assert lease["metadata"]["labels"] == {
                "app.kubernetes.io/name": "kvip",
                "kvip.io/replica-of": LEASE,
            }
            assert lease["spec"]["holderIdentity"] == "kvip-a"
            assert lease["spec"]["leaseDurationSeconds"] == 2  # ceil(3 * 0.5)

            seen = len(changes)
            cards["kvip-b"] = {"pool-1": "198.18.0.3", "pool-2": "198.18.1.3"}
            await until(lambda: "pool-2" in directory.cards()["kvip-b"].serving,
                        what="the new card")  # fmt: skip
            assert len(changes) == seen + 1
            assert changes[-1]["kvip-b"].serving == cards["kvip-b"]

            ready["kvip-a"] = False
            await until(lambda: not directory.cards()["kvip-a"].ready, what="kvip-a not ready")
            # Not ready, it may still answer with its address: never hand it out.
            assert "kvip-a" in directory.addresses_for("pool-1")
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_cancelled_heartbeat_deletes_its_lease(
    kube: Kube, leases: Leases, namespace: str
) -> None:
    # A 60 s Lease (period 20 s): only its deletion can drop the card within 10 s.
    heartbeat = ReplicaHeartbeat(kube, namespace=namespace, lease_name=LEASE, replica="kvip-a",
                                 card=lambda: {"pool-1": "198.18.0.2"}, period=20)  # fmt: skip
    directory = ReplicaDirectory(kube, namespace=namespace, lease_name=LEASE, period=PERIOD)
    beating = trio.CancelScope()

    async def beat() -> None:
        with beating:
            await heartbeat.run()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(directory.run)
            nursery.start_soon(beat)
            await until(lambda: "kvip-a" in directory.cards(), what="the card")
            assert leases.get(namespace, heartbeat.name)["spec"]["leaseDurationSeconds"] == 60
            beating.cancel()
            await until(lambda: directory.cards() == {}, what="the card to go", timeout=10)
            with pytest.raises(NotFound):
                leases.get(namespace, heartbeat.name)
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_heartbeat_takes_over_a_leftover_lease_and_recreates_a_deleted_one(
    kube: Kube, leases: Leases, namespace: str
) -> None:
    """A pod restarted under the same name finds the Lease of its previous life
    (possibly with other addresses); a Lease deleted as litter while its
    replica could not renew is written anew."""
    leftover = lease_body("kvip-replica-kvip-a", holder="kvip-a", duration=2,
                          annotations=serving(**{"pool-1": "198.18.0.99"}),
                          renewed=datetime.now(UTC))  # fmt: skip
    leases.create(namespace, leftover)
    heartbeat = ReplicaHeartbeat(kube, namespace=namespace, lease_name=LEASE, replica="kvip-a",
                                 card=lambda: {"pool-1": "198.18.0.2"}, period=PERIOD)  # fmt: skip

    def annotation() -> str | None:
        try:
            lease = leases.get(namespace, heartbeat.name)
        except NotFound:
            return None
        found: str = lease["metadata"]["annotations"]["kvip.io/serving"]
        return found

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(heartbeat.run)
            mine = json.dumps({"pool-1": "198.18.0.2"})
            await until(lambda: annotation() == mine, what="the leftover taken over")
            renewals = heartbeat.renewals
            leases.delete(namespace, heartbeat.name)
            await until(lambda: heartbeat.renewals > renewals + 1, what="two more renewals")
            assert annotation() == mine
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_replica_with_an_unusual_name_gets_a_valid_lease(kube: Kube, namespace: str) -> None:
    """The API server rejects a Lease name that is not a DNS-1123 subdomain."""
    replica = "Kvip_Pod." + "x" * 300
    heartbeat = ReplicaHeartbeat(kube, namespace=namespace, lease_name=LEASE, replica=replica,
                                 card=lambda: {"pool-1": "198.18.0.2"}, period=PERIOD)  # fmt: skip
    directory = ReplicaDirectory(kube, namespace=namespace, lease_name=LEASE, period=PERIOD)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(heartbeat.run)
            nursery.start_soon(directory.run)
            await until(lambda: replica in directory.cards(), what="the card")
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert heartbeat.name.startswith("kvip-replica-kvip-pod-xxx") and len(heartbeat.name) <= 253


def test_a_lease_no_longer_renewed_drops_out_after_its_duration(
    leases: Leases, counting: Callable[..., CountingLeases], namespace: str
) -> None:
    """Judged by when this process saw renewTime change, not by renewTime itself:
    a Lease renewed an hour ago (by another node's clock) or an hour from now is
    fresh when first seen, and stale once unchanged for longer than its duration."""
    now = datetime.now(UTC)
    for name, renewed in (("past", now - timedelta(hours=1)), ("future", now + timedelta(hours=1))):
        body = lease_body(f"kvip-replica-{name}", holder=name, renewed=renewed, duration=10,
                          annotations=serving(**{"pool-1": "198.18.0.9"}))  # fmt: skip
        leases.create(namespace, body)
    changes: list[tuple[float, set[str]]] = []
    listing = counting()
    directory = ReplicaDirectory(listing.kube, namespace=namespace, lease_name=LEASE, period=1,
                                 lease_api=listing, on_change=lambda: changes.append(
                                     (trio.current_time(), set(directory.cards()))))  # fmt: skip

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(directory.run)
            await listing.until_call(15)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=mock_clock())
    # Listed at 0, 1, 2, ... s: fresh up to 10 s after first seen, stale at 11.
    assert changes == [(0.0, {"past", "future"}), (11.0, set())]
    assert directory.addresses_for("pool-1", stale_too=True) == {
        "past": IPv4Address("198.18.0.9"),
        "future": IPv4Address("198.18.0.9"),
    }


def test_only_a_directory_that_may_deletes_leases_stale_for_ten_minutes(
    leases: Leases, counting: Callable[..., CountingLeases], namespace: str
) -> None:
    def create(name: str) -> None:
        body = lease_body(name, holder=name, renewed=datetime.now(UTC), duration=10,
                          annotations=serving(**{"pool-1": "198.18.0.9"}))  # fmt: skip
        leases.create(namespace, body)

    def exists(name: str) -> bool:
        try:
            leases.get(namespace, name)
        except NotFound:
            return False
        return True

    create("kvip-replica-old")
    allowed = False
    listing = counting()
    directory = ReplicaDirectory(listing.kube, namespace=namespace, lease_name=LEASE, period=5,
                                 lease_api=listing, may_delete=lambda: allowed)  # fmt: skip

    async def main() -> None:
        nonlocal allowed
        async with trio.open_nursery() as nursery:
            nursery.start_soon(directory.run)
            # Listed at 0, 5, ... s; the 150th list at 745 s.
            await listing.until_call(150)
            assert trio.current_time() == 745.0
            assert exists("kvip-replica-old"), "deleted although may_delete() said no"
            allowed = True
            create("kvip-replica-young")
            # Deletions are requests too: five span at least three lists.
            await listing.until_call(listing.calls + 5)
            assert not exists("kvip-replica-old")
            assert exists("kvip-replica-young"), "deleted a Lease first seen a moment ago"
            nursery.cancel_scope.cancel()

    trio.run(main, clock=mock_clock())


def test_a_malformed_card_is_logged_once_and_serves_nothing(
    leases: Leases,
    counting: Callable[..., CountingLeases],
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    malformed = {
        "bad-json": {"kvip.io/serving": "{"},
        "not-an-object": {"kvip.io/serving": "[1]"},
        "not-an-address": serving(**{"pool-1": "198.18.0.300"}),
        "no-annotation": {},
        "bad-ready": {**serving(**{"pool-1": "198.18.0.4"}), "kvip.io/ready": "maybe"},
    }
    annotations = {**malformed, "good": serving(**{"pool-1": "198.18.0.2"}),
                   "not-ready": {**serving(), "kvip.io/ready": "false"}}  # fmt: skip
    for holder, values in annotations.items():
        body = lease_body(f"kvip-replica-{holder}", holder=holder, annotations=values,
                          renewed=datetime.now(UTC), duration=3600)  # fmt: skip
        leases.create(namespace, body)
    listing = counting()
    directory = ReplicaDirectory(listing.kube, namespace=namespace, lease_name=LEASE, period=1,
                                 lease_api=listing)  # fmt: skip

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(directory.run)
            await listing.until_call(6)
            assert directory.cards() == {
                **{holder: ReplicaCard(holder, {}, ready=False) for holder in malformed},
                "good": ReplicaCard("good", {"pool-1": "198.18.0.2"}),
                "not-ready": ReplicaCard("not-ready", {}, ready=False),
            }
            assert directory.addresses_for("pool-1") == {"good": IPv4Address("198.18.0.2")}
            fixed = leases.get(namespace, "kvip-replica-bad-json")
            fixed["metadata"]["annotations"] = serving(**{"pool-1": "198.18.0.5"})
            leases.replace(namespace, fixed)
            await listing.until_call(8)
            assert directory.addresses_for("pool-1") == {
                "good": IPv4Address("198.18.0.2"),
                "bad-json": IPv4Address("198.18.0.5"),
            }
            nursery.cancel_scope.cancel()

    with caplog.at_level(logging.WARNING, logger="kvip.actors._replicas"):
        trio.run(main, clock=mock_clock())
    warned = [record.getMessage() for record in caplog.records if "malformed" in record.message]
    assert len(warned) == len(malformed), warned


def test_an_outage_is_logged_once_and_retried(
    counting: Callable[..., CountingLeases], namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    beat_api, list_api = counting(), counting()
    heartbeat = ReplicaHeartbeat(beat_api.kube, namespace=namespace, lease_name=LEASE,
                                 replica="kvip-a", card=lambda: {"pool-1": "198.18.0.2"},
                                 period=1, lease_api=beat_api)  # fmt: skip
    directory = ReplicaDirectory(list_api.kube, namespace=namespace, lease_name=LEASE, period=1,
                                 lease_api=list_api)  # fmt: skip

    def logged(level: int) -> int:
        return sum(record.levelno == level for record in caplog.records)

    async def outage_then_recovery(outages: int) -> None:
        beat_api.down = list_api.down = True
        await beat_api.until_call(beat_api.calls + 6)
        await list_api.until_call(list_api.calls + 6)
        assert logged(logging.WARNING) == 2 * outages
        beat_api.down = list_api.down = False
        renewals = heartbeat.renewals
        await beat_api.until_call(beat_api.calls + 4)
        await list_api.until_call(list_api.calls + 4)
        assert heartbeat.renewals > renewals
        assert logged(logging.INFO) == 2 * outages
        assert "kvip-a" in directory.addresses_for("pool-1", stale_too=True)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(heartbeat.run)
            nursery.start_soon(directory.run)
            await outage_then_recovery(1)
            await outage_then_recovery(2)
            nursery.cancel_scope.cancel()

    with caplog.at_level(logging.INFO, logger="kvip.actors._replicas"):
        trio.run(main, clock=mock_clock())
