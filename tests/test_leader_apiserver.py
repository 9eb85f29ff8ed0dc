"""Two electors against the real API server: when the leader's connection to it
stops passing bytes (a partition, or an API server that hangs for the leader),
the leader steps down before its standby, which still reaches the API server,
can take the Lease. They never lead at the same time.

The leader talks to the API server through `PausableProxy`, a TCP forwarder that
can hold every byte; the standby talks to it directly. Pausing the API server
process itself (SIGSTOP) would freeze the standby too, and so could never show
two leaders.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
from kubernetes import client, config

from kvip.actors import LeaderElector
from kvip.k8s import VMNETCFGS, Kube, Leases, Unavailable
from tests.lab.apiserver import ApiServer
from tests.lab.apiserver_pki import write_kubeconfig

pytestmark = [pytest.mark.apiserver, pytest.mark.slow]

LEASE_DURATION = 6.0
RENEW_DEADLINE = 3.0
RETRY_PERIOD = 0.5


class PausableProxy:
    """Forwards TCP connections on 127.0.0.1 to `target_port`. While paused,
    bytes already received are held and nothing more is passed on, either
    way; new connections are accepted and go nowhere until `resume()`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        #: Connections accepted so far.
        self.connections = 0
        self._paused: trio.Event | None = None

    def pause(self) -> None:
        if self._paused is None:
            self._paused = trio.Event()

    def resume(self) -> None:
        paused, self._paused = self._paused, None
        if paused is not None:
            paused.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._forward, listeners)

    async def _forward(self, client_stream: trio.SocketStream) -> None:
        self.connections += 1
        async with client_stream:
            try:
                server_stream = await trio.open_tcp_stream("127.0.0.1", self.target_port)
            except OSError:
                return
            async with server_stream, trio.open_nursery() as nursery:
                nursery.start_soon(self._pipe, client_stream, server_stream, nursery.cancel_scope)
                nursery.start_soon(self._pipe, server_stream, client_stream, nursery.cancel_scope)

    async def _pipe(
        self, source: trio.SocketStream, sink: trio.SocketStream, both: trio.CancelScope
    ) -> None:
        try:
            async for chunk in source:
                while self._paused is not None:
                    await self._paused.wait()
                await sink.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            both.cancel()


class Terms:
    """When each elector led, by the monotonic clock of this one process."""

    def __init__(self) -> None:
        self.spans: dict[str, list[list[float]]] = {}

    def lead_for(self, identity: str) -> Callable[[], Awaitable[None]]:
        async def lead() -> None:
            span = [time.monotonic(), float("inf")]
            self.spans.setdefault(identity, []).append(span)
            try:
                await trio.sleep_forever()
            finally:
                span[1] = time.monotonic()

        return lead

    def overlaps(self) -> list[tuple[str, str]]:
        found = []
        for first, first_spans in self.spans.items():
            for second, second_spans in self.spans.items():
                if first >= second:
                    continue
                for a_start, a_end in first_spans:
                    for b_start, b_end in second_spans:
                        if a_start < b_end and b_start < a_end:
                            found.append((first, second))
        return found


async def until(condition: Callable[[], bool], *, what: str, timeout: float) -> None:
    with trio.move_on_after(timeout):
        while not condition():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"waited {timeout:g} s for {what}")


def client_for(apiserver: ApiServer, url: str, kubeconfig: Path) -> client.ApiClient:
    """An ApiClient for the API server at `url` (its own kubeconfig: the loaded
    configuration puts the kubeconfig's server back on every request)."""
    write_kubeconfig(kubeconfig, url=url, ca_file=apiserver.ca_file, token=apiserver.token)
    api_client: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig)
    )
    return api_client


def test_a_partitioned_leader_steps_down_before_its_standby_takes_the_lease(
    apiserver: ApiServer, namespace: str, tmp_path: Path
) -> None:
    terms = Terms()
    proxy = PausableProxy(int(apiserver.url.rsplit(":", 1)[1]))
    kubes: list[Kube] = []

    def elector(kube: Kube, identity: str) -> LeaderElector:
        return LeaderElector(
            kube,
            namespace=namespace,
            name="kvip",
            identity=identity,
            lease_duration=LEASE_DURATION,
            renew_deadline=RENEW_DEADLINE,
            retry_period=RETRY_PERIOD,
        )

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.run)
            proxied = f"https://127.0.0.1:{proxy.port}"
            first_kube = Kube(client_for(apiserver, proxied, tmp_path / "through-proxy"))
            second_kube = Kube(client_for(apiserver, apiserver.url, tmp_path / "direct"))
            kubes.extend((first_kube, second_kube))
            first, second = elector(first_kube, "first"), elector(second_kube, "second")
            try:
                nursery.start_soon(first.run, terms.lead_for("first"))
                await until(lambda: first.is_leader, what="the first to lead", timeout=30)
                nursery.start_soon(second.run, terms.lead_for("second"))
                await until(lambda: second.healthy, what="the standby to see the Lease", timeout=30)
                # Renewals through the proxy keep the Lease past its duration.
                await trio.sleep(LEASE_DURATION + 2 * RETRY_PERIOD)
                assert first.is_leader and not second.is_leader

                proxy.pause()
                paused_at = time.monotonic()
                await until(lambda: second.is_leader, what="the standby to lead", timeout=30)
                first_end = terms.spans["first"][-1][1]
                second_start = terms.spans["second"][0][0]
                print(
                    f"first stepped down {first_end - paused_at:.2f} s after the pause, "
                    f"second led {second_start - paused_at:.2f} s after it"
                )
                assert first_end < second_start, "the standby led while the leader still led"
                assert not first.is_leader

                # Once its connection passes bytes again, the old leader stays a standby.
                proxy.resume()
                await until(lambda: first.healthy, what="the first to reach the API", timeout=30)
                await trio.sleep(4 * RETRY_PERIOD)
                assert second.is_leader and not first.is_leader
                leases = Leases(second_kube)
                try:
                    lease = await trio.to_thread.run_sync(leases.get, namespace, "kvip")
                finally:
                    leases.close()
                assert lease["spec"]["holderIdentity"] == "second"
                assert terms.overlaps() == []
            finally:
                proxy.resume()
                nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        for kube in kubes:
            kube.close()


def test_a_lease_request_to_a_hung_api_server_is_tried_once(
    apiserver: ApiServer, namespace: str, tmp_path: Path
) -> None:
    """A timed-out Lease request fails at once, without urllib3's retries on new
    connections (each with a whole timeout of its own): the elector retries on
    its own schedule, and must hear back within its renew deadline."""
    proxy = PausableProxy(int(apiserver.url.rsplit(":", 1)[1]))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.run)
            proxy.pause()
            url = f"https://127.0.0.1:{proxy.port}"
            kube = Kube(client_for(apiserver, url, tmp_path / "kubeconfig"))
            leases = Leases(kube, request_timeout=0.5)
            try:
                with pytest.raises(Unavailable):
                    await trio.to_thread.run_sync(leases.get, namespace, "kvip")
                assert proxy.connections == 1
            finally:
                leases.close()
                kube.close()
                proxy.resume()
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_call_to_a_hung_api_server_ends_within_its_own_timeout(
    apiserver: ApiServer, namespace: str, tmp_path: Path
) -> None:
    """Found while fixing the Lease requests: Kube.run promised that a request
    ends within its own timeout, but urllib3 retried a timed-out one three more
    times on new connections (4 timeouts per call). The controller and the
    status writers retry on their own schedule; a call is tried once."""
    proxy = PausableProxy(int(apiserver.url.rsplit(":", 1)[1]))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.run)
            proxy.pause()
            kubeconfig = tmp_path / "kubeconfig"
            write_kubeconfig(
                kubeconfig,
                url=f"https://127.0.0.1:{proxy.port}",
                ca_file=apiserver.ca_file,
                token=apiserver.token,
            )
            kube = Kube.connect(kubeconfig=str(kubeconfig))
            kube.request_timeout = 0.5
            try:
                with pytest.raises(Unavailable):
                    await kube.run(lambda: kube.get(VMNETCFGS, "absent", namespace=namespace))
                assert proxy.connections == 1
            finally:
                kube.close()
                proxy.resume()
                nursery.cancel_scope.cancel()

    trio.run(main)
