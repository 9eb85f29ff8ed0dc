"""The HA lab's arithmetic (tests/hafaults.py): which exchange and which address
loss belongs to which fault window, and which issue-12 targets a run missed.
Pure: made-up exchanges and samples, no lab."""

from __future__ import annotations

import subprocess
from ipaddress import IPv4Address

from tests.lab.haclients import Watched
from tests.lab.hafaults import NEW_VM_TARGET, Report, Window, figures, render
from tests.lab.haprobe import Exchange
from tests.lab.netlab import Client


def watched(name: str, samples: list[tuple[float, bool]]) -> Watched:
    client = Client(netns="none", ifname="eth0", mac="52:54:00:00:00:01", port="eth1")
    process: subprocess.Popen[bytes] = subprocess.Popen(["true"])
    process.wait()
    return Watched(name, client, IPv4Address("198.18.1.10"), process, 0.0, samples)


def answered(kind: str, at: float, latency: float = 0.01) -> Exchange:
    return Exchange(kind, at, latency)


def missed(kind: str, at: float) -> Exchange:
    return Exchange(kind, at, None)


def test_exchanges_and_address_losses_count_in_the_window_they_start_in() -> None:
    window = Window("fault", 10.0, 20.0)
    exchanges = [answered("dora", 9.9), answered("renew", 10.0), missed("renew", 15.0),
                 answered("rebind", 19.5, 0.3), missed("dora", 20.0)]  # fmt: skip
    clients = [
        watched("dhclient", [(9.0, False), (12.0, True), (20.5, False)]),
        watched("dhcpcd", [(11.0, True), (13.0, False), (14.0, False), (15.0, True)]),
    ]
    row = figures(window, exchanges, clients)
    assert (row.exchanges, row.answered, row.missed) == (3, 2, {"renew": 1})
    assert row.worst == 0.3
    assert row.lost == ["dhcpcd"]
    assert any("dhcpcd without its address +3.0..+5.0 s" in note for note in row.notes)


def test_a_wrong_address_fails_the_run_even_when_everything_was_answered() -> None:
    window = Window("steady", 0.0, 10.0, new_vm=3.0, has_new_vm=True)
    exchanges = [answered("dora", 1.0), Exchange("rebind", 2.0, 0.02, ("ACK 198.18.1.99",))]
    report = Report([figures(window, exchanges, [])], ((0, 0, 0), (0, 0, 0)), [])
    assert report.failures() == ["1 wrong answers: ['ACK 198.18.1.99']"]
    assert "OVERALL: FAIL" in render(report)


def test_a_run_meets_the_targets_only_with_every_one_of_them() -> None:
    def report(new_vm: float | None, misses: int, lost: bool) -> Report:
        window = Window("kill", 0.0, 200.0, new_vm=new_vm, has_new_vm=True)
        exchanges = [answered("renew", 1.0 + i * 0.05) for i in range(2000)]
        exchanges += [missed("renew", 50.0) for _ in range(misses)]
        clients = [watched("networkd", [(5.0, True), (6.0, not lost), (7.0, True)])]
        return Report([figures(window, exchanges, clients)], ((0, 0, 0), (0, 0, 0)), [])

    assert report(NEW_VM_TARGET, 2, False).failures() == []
    assert "OVERALL: PASS" in render(report(NEW_VM_TARGET, 2, False))
    assert len(report(NEW_VM_TARGET, 3, False).failures()) == 1  # 99.85 % < 99.9 %
    assert len(report(NEW_VM_TARGET + 0.1, 0, False).failures()) == 1
    assert len(report(None, 0, False).failures()) == 1
    assert report(1.0, 0, True).failures() == ["real clients lost their address: networkd"]


def test_a_renew_to_a_replica_that_was_down_is_left_out_and_said() -> None:
    """With an address per replica, a unicast RENEW to a replica whose process is
    gone or whose link is down reaches no server at all (real clients rebind):
    it is not counted, and the notes say how many. A RENEW to a replica that
    was up, or any broadcast exchange, still counts when missed."""
    down, up = IPv4Address("198.18.0.3"), IPv4Address("198.18.0.2")
    window = Window("link", 0.0, 30.0, down=[(down, 5.0, 15.0)])
    exchanges = [
        Exchange("renew", 6.0, None, to=down),
        Exchange("renew", 7.0, None, to=up),
        Exchange("renew", 16.0, None, to=down),
        missed("rebind", 8.0),
        answered("renew", 9.0),
    ]
    row = figures(window, exchanges, [])
    assert (row.exchanges, row.answered, row.missed) == (4, 1, {"renew": 2, "rebind": 1})
    assert "not counted: 1 unicast RENEW to a replica that was down" in row.notes
