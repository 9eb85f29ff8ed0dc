"""A DECLINE seen by one replica is recorded once, by the leader, in the
vmnetcfg status, and honoured by every replica until a reset (issue 12), on
the HA lab's real L2 segment: three `kvip run` replicas with addresses of
their own."""

from __future__ import annotations

import random
import shutil
import socket
import time
from ipaddress import IPv4Address
from typing import Any

import pytest

from kvip.k8s import RESET_ANNOTATION
from protocol import DecodeError, MessageType, Op, decode
from tests.lab import netlab
from tests.lab.apiserver import ApiServer
from tests.lab.halab import HaLab, mac, open_ha_lab
from tests.lab.haprobe import BROADCAST, Conversation, client_socket
from tests.lab.kvip_rig import wait_for
from tests.lab.objects import CFGS, GROUP, VERSION

pytestmark = [pytest.mark.netns, pytest.mark.apiserver, pytest.mark.slow]


def offers(talk: Conversation, sock: socket.socket, *, listen: float = 1.5) -> set[IPv4Address]:
    """The server identifiers of every OFFER to one broadcast DISCOVER."""
    xid = random.getrandbits(32)
    talk.send(talk.request(xid, {53: MessageType.DISCOVER}, flags=BROADCAST))
    servers: set[IPv4Address] = set()
    until = time.monotonic() + listen
    while (left := until - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            reply = decode(sock.recv(4096))
        except (TimeoutError, DecodeError):
            continue
        except OSError:
            time.sleep(0.01)
            continue
        ours = reply.op == Op.BOOTREPLY and reply.xid == xid
        if ours and reply.server_id is not None and reply.message_type == MessageType.OFFER:
            servers.add(reply.server_id)
    return servers


def declined_in_status(ha: HaLab, vm: str) -> str | None:
    cfg: dict[str, Any] = ha.custom.get_namespaced_custom_object(
        GROUP, VERSION, ha.namespace, CFGS, vm
    )
    entries = (cfg.get("status") or {}).get("networkconfig") or []
    return next((e["declined"] for e in entries if "declined" in e), None)


def test_a_decline_seen_by_a_follower_is_recorded_once_and_honoured_by_every_replica(
    apiserver: ApiServer, crds: list[str]
) -> None:
    if not netlab.is_root() or shutil.which("dhclient") is None:
        pytest.skip("needs root and dhclient (scripts/install-system-deps.sh)")
    with open_ha_lab(apiserver, clients=("dhclient",)) as ha:
        leader = ha.leader(timeout=30)
        assert leader is not None
        follower = next(r for r in ha.replicas if r is not leader)
        everyone = {r.address.ip for r in ha.replicas}
        vm_mac = mac(0x30)
        wire = ha.plug_vm(vm_mac)
        vm = ha.create_vm(vm_mac)
        ip = ha.wait_recorded(vm)
        with client_socket(wire) as sock:
            talk = Conversation(sock, vm_mac, ip)
            wait_for(lambda: offers(talk, sock) == everyone, timeout=30,
                     what="an OFFER from every replica")  # fmt: skip
            decline = {53: MessageType.DECLINE, 50: ip, 54: follower.address.ip}
            talk.send(talk.request(random.getrandbits(32), decline, flags=BROADCAST))
            # Only the follower it names takes it; its heartbeat tells the leader.
            wait_for(lambda: declined_in_status(ha, vm) == str(ip), timeout=30,
                     what="the leader to record the decline")  # fmt: skip
            wait_for(lambda: offers(talk, sock) == set(), timeout=15,
                     what="every replica to honour the decline")  # fmt: skip
            assert follower.process is not None and leader.process is not None
            assert "declined" in follower.process.log()
            patch = {"metadata": {"annotations": {RESET_ANNOTATION: "test"}}}
            ha.custom.patch_namespaced_custom_object(GROUP, VERSION, ha.namespace, CFGS, vm, patch)
            try:
                wait_for(lambda: offers(talk, sock) == everyone, timeout=30,
                         what="every replica to answer again after the reset")  # fmt: skip
            except AssertionError:
                print("offers:", offers(talk, sock))
                for replica in ha.replicas:
                    assert replica.process is not None
                    print(f"--- {replica.name} {replica.address}\n{replica.process.log()[-6000:]}")
                raise
            assert declined_in_status(ha, vm) is None
