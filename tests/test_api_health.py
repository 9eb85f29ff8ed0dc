"""ApiHealth: since when the API server has been unreachable, one warning when it
goes away and one line when it is back (issue 12: "a metric and a log line say
when the API server has been unreachable and for how long").

Unit tests with a fake clock, and one Watcher against a closed loopback port
through kvip's real Kube (no API server, no root)."""

from __future__ import annotations

import logging
import socket

import pytest
import trio
from kubernetes import client

from kvip.k8s import (
    IPPOOLS,
    ApiHealth,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    Kube,
    KubeError,
    NotFound,
    Unavailable,
    Watcher,
    WatchMessage,
)

LOGGER = "kvip.k8s._health"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def unavailable(status: int | None = None) -> Unavailable:
    error = Unavailable("API server unreachable: [Errno 111] Connection refused")
    error.status = status
    return error


def test_reachable_until_a_request_fails() -> None:
    clock = FakeClock()
    health = ApiHealth(clock=clock)
    assert health.unreachable_for() == 0.0
    health.succeeded()
    clock.now += 5
    assert health.unreachable_for() == 0.0 and health.unreachable_since is None


def test_unreachable_since_the_first_failure_after_the_last_success() -> None:
    clock = FakeClock()
    health = ApiHealth(clock=clock)
    health.succeeded()
    clock.now += 1
    health.failed(unavailable())
    clock.now += 10
    health.failed(unavailable())  # a later failure does not move the start
    clock.now += 20.5
    assert health.unreachable_for() == 30.5
    assert health.unreachable_since == 1001.0
    health.succeeded()
    assert health.unreachable_for() == 0.0
    clock.now += 3
    health.failed(unavailable())
    clock.now += 2
    assert health.unreachable_for() == 2.0


def test_one_warning_when_unreachable_and_one_line_when_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    health = ApiHealth(clock=clock)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for _ in range(5):
            health.failed(unavailable())
            clock.now += 12.46
        health.succeeded()
        health.succeeded()
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    assert messages == [
        (
            logging.WARNING,
            "API server unreachable: [Errno 111] Connection refused; "
            "serving from the last known state",
        ),
        (logging.INFO, "API server reachable again after 62.3 s"),
    ]


@pytest.mark.parametrize("error", [unavailable(), unavailable(500), unavailable(503)])
def test_connection_errors_and_5xx_mean_unreachable(error: KubeError) -> None:
    clock = FakeClock()
    health = ApiHealth(clock=clock)
    health.observe(error)
    clock.now += 4
    assert health.unreachable_for() == 4.0


@pytest.mark.parametrize(
    "error",
    [NotFound("404"), Conflict("409"), Forbidden("403"), Invalid("422"), Gone("410"),
     unavailable(429)],
)  # fmt: skip
def test_a_4xx_answer_means_reachable(error: KubeError) -> None:
    clock = FakeClock()
    health = ApiHealth(clock=clock)
    health.failed(unavailable())
    clock.now += 4
    health.observe(error)
    assert health.unreachable_for() == 0.0


def test_an_error_that_says_nothing_about_the_server_changes_nothing() -> None:
    clock = FakeClock()
    health = ApiHealth(clock=clock)
    health.observe(KubeError("unexpected client error: ValueError()"))
    assert health.unreachable_since is None
    health.failed(unavailable())
    health.observe(KubeError("unexpected client error: ValueError()"))
    assert health.unreachable_since == 1000.0


def closed_port() -> int:
    """A loopback port nobody listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kube_at(port: int) -> Kube:
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    configuration.retries = False
    return Kube(client.ApiClient(configuration), request_timeout=5)


def test_a_watcher_that_cannot_reach_the_api_server_makes_health_unreachable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube = kube_at(closed_port())
    clock = FakeClock()
    kube.health = ApiHealth(clock=clock)

    async def main() -> None:
        send, _receive = trio.open_memory_channel[WatchMessage](10)
        watcher = Watcher(kube, IPPOOLS, send, retry_delay=0.01)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watcher.run)
            with trio.fail_after(10):
                while kube.health.unreachable_since is None:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()

    try:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            trio.run(main)
    finally:
        kube.close()
    clock.now += 7
    assert kube.health.unreachable_for() == 7.0
    warnings = [r for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert warnings[0].getMessage().startswith("API server unreachable: ")
