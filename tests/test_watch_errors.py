"""The Watcher's error paths, against a scripted stand-in for the API server.

Found by tests/chaos: every error a watch met (410 Gone after a compaction, the
API server going away) reached Watcher.run wrapped in the exception group of
the nursery around the worker thread, so `except Gone` / `except KubeError`
never matched: each was logged as a crash with a traceback and answered with
a full relist, and the 410 path never ran."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from kvip.k8s import IPPOOLS, ApiHealth, Changed, Snapshot, Watcher, WatchMessage


@dataclass
class FakeResponse:
    lines: list[dict[str, Any]]
    fail_with: BaseException | None = None

    def stream(self, amt: Any = None, decode_content: bool = False) -> Any:
        for line in self.lines:
            yield (json.dumps(line) + "\n").encode()
        if self.fail_with is not None:
            raise self.fail_with

    def shutdown(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


@dataclass
class FakeKube:
    """`list` answers from `objects`; each watch request plays the next script."""

    scripts: list[FakeResponse]
    lists: int = 0
    watched_from: list[str] = field(default_factory=list)
    health: ApiHealth = field(default_factory=ApiHealth)
    #: This many watch requests are refused before the scripts play.
    refused: int = 0

    @property
    def custom(self) -> FakeKube:
        return self

    async def run(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    def list(self, resource: Any, *, label_selector: str | None = None) -> Any:
        self.lists += 1
        return [pool(f"listed-{self.lists}", "10")], "10"

    def list_cluster_custom_object(self, *args: Any, **kwargs: Any) -> FakeResponse:
        self.watched_from.append(kwargs["resource_version"])
        if self.refused:
            self.refused -= 1
            raise ConnectionRefusedError(111, "Connection refused")
        if not self.scripts:
            raise AssertionError("no more watch scripts")
        return self.scripts.pop(0)


def pool(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version}}


def watch(kube: FakeKube, count: int) -> list[WatchMessage]:
    async def main() -> list[WatchMessage]:
        send, receive = trio.open_memory_channel[WatchMessage](100)
        watcher = Watcher(kube, IPPOOLS, send, retry_delay=0.01)  # type: ignore[arg-type]
        got: list[WatchMessage] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watcher.run)
            with trio.fail_after(10):
                while len(got) < count:
                    got.append(await receive.receive())
            nursery.cancel_scope.cancel()
        return got

    return trio.run(main)


def test_410_gone_relists_quietly(caplog: pytest.LogCaptureFixture) -> None:
    gone = {"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}
    kube = FakeKube([FakeResponse([{"type": "ADDED", "object": pool("a", "11")}, gone]),
                     FakeResponse([])])  # fmt: skip
    with caplog.at_level(logging.INFO, logger="kvip.k8s._watch"):
        messages = watch(kube, 3)
    assert [type(m) for m in messages] == [Snapshot, Changed, Snapshot]
    assert "expired (410 Gone); listing again" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_dropped_connection_resumes_the_watch_without_relisting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from urllib3.exceptions import ProtocolError

    kube = FakeKube(
        [
            FakeResponse([{"type": "ADDED", "object": pool("a", "11")}],
                         fail_with=ProtocolError("Response ended prematurely")),
            FakeResponse([{"type": "MODIFIED", "object": pool("a", "12")}]),
            FakeResponse([]),
        ]
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="kvip.k8s._watch"):
        messages = watch(kube, 3)
    assert [type(m) for m in messages] == [Snapshot, Changed, Changed]
    assert kube.lists == 1
    # Resumed from the last event it saw, not from where the cut-off watch began.
    assert kube.watched_from[:2] == ["10", "11"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_refused_watch_reports_the_api_server_unreachable_until_one_opens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube = FakeKube([FakeResponse([{"type": "ADDED", "object": pool("a", "11")}]),
                     FakeResponse([])], refused=1)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="kvip.k8s._health"):
        messages = watch(kube, 2)
    assert [type(m) for m in messages] == [Snapshot, Changed]
    assert kube.watched_from[:2] == ["10", "10"]
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "kvip.k8s._health"]
    assert [level for level, _ in said] == [logging.WARNING, logging.INFO]
    assert said[0][1] == (
        "API server unreachable: [Errno 111] Connection refused; serving from the last known state"
    )
    assert said[1][1].startswith("API server reachable again after ")
    assert kube.health.unreachable_for() == 0.0
