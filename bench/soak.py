"""Soak: `kvip run` under steady churn for N minutes, watching for leaks.

A local etcd + kube-apiserver (tests/lab/apiserver.py) with kvip's CRDs, one
IPPool, and `kvip run --socket-netns` serving it in a lab namespace. Each
cycle creates a few VirtualMachines, waits for their reservations, runs a
DHCP exchange (DISCOVER/OFFER, REQUEST/ACK) for each from a client namespace,
checks the address, deletes the VMs and waits until kvip dropped their
vmnetcfgs. The kvip process's RSS, open file descriptors and threads are
sampled at the start, after a warm-up cycle, every --sample seconds and at the
end; growth past the limits is flagged (exit status 1).

    make soak MINUTES=10      # or: .venv/bin/python -m bench.soak --minutes 10

Needs root (network namespaces). Everything is bounded and torn down at the
end, also on Ctrl-C or an error: kvip, the API server, every namespace.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import socket
import sys
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from protocol import DecodeError, Message, MessageType, Op, Options, decode, encode
from tests.lab import objects
from tests.lab.apiserver import ApiServer, missing_binaries
from tests.lab.k8s_crds import KUBEVIRT_CRDS, KVIP_CRDS, install_crds
from tests.lab.kvip_process import KvipProcess
from tests.lab.netlab import Client, call_in, netlab
from tests.lab.objects import GROUP, VERSION, VMS

NAMESPACE = "soak"
SERVER_IP = "198.18.0.2"
CLIENT_ADDRESS = "198.18.200.2/16"
#: Growth past these, from the warm-up sample to the end, is flagged.
RSS_LIMIT_KB = 20 * 1024
FD_LIMIT = 5
THREAD_LIMIT = 4  # trio's worker threads come and go with the API calls

POOL = objects.ippool(
    "soak-pool",
    f"{NAMESPACE}/vlan100",
    options="bare",
    server=SERVER_IP,
    start="198.18.1.1",
    end="198.18.3.250",
    router="198.18.0.1",
    dns=["198.18.0.53"],
    leasetime=300,
)


@dataclass(frozen=True, slots=True)
class Sample:
    label: str
    minute: float
    rss_kb: int
    fds: int
    threads: int

    def __str__(self) -> str:
        return (
            f"{self.label:<10} t={self.minute:6.2f} min  RSS {self.rss_kb / 1024:7.1f} MB  "
            f"fds {self.fds:4d}  threads {self.threads:3d}"
        )


def sample(pid: int, label: str, started: float) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    return Sample(
        label,
        (time.monotonic() - started) / 60,
        int(fields["VmRSS"].split()[0]),
        len(os.listdir(f"/proc/{pid}/fd")),
        int(fields["Threads"]),
    )


# --- a light DHCP client, run inside the client namespace ----------------------------


def _exchange(sock: socket.socket, request: bytes, *, xid: int, timeout: float) -> Message | None:
    sock.sendto(request, ("255.255.255.255", 67))
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(4096)
        except TimeoutError:
            return None
        with contextlib.suppress(DecodeError):
            reply = decode(data)
            if reply.op == Op.BOOTREPLY and reply.xid == xid:
                return reply
    return None


def dora_all(ifname: str, pairs: list[tuple[str, str]], server: str) -> list[str]:
    """DISCOVER/OFFER, REQUEST/ACK for each (mac, expected ip); the problems seen."""
    problems = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        sock.bind(("0.0.0.0", 68))
        for mac, expected in pairs:
            chaddr = bytes.fromhex(mac.replace(":", ""))
            xid = random.getrandbits(32)
            discover = Message(
                op=Op.BOOTREQUEST,
                xid=xid,
                chaddr=chaddr,
                flags=0x8000,
                options=Options({53: MessageType.DISCOVER}),
            )
            offer = None
            for _ in range(3):  # a client retries (RFC 2131 4.1)
                offer = _exchange(sock, encode(discover), xid=xid, timeout=2)
                if offer is not None:
                    break
            if offer is None or str(offer.yiaddr) != expected:
                problems.append(f"{mac}: offer {offer and offer.yiaddr}, expected {expected}")
                continue
            options = {53: MessageType.REQUEST, 50: offer.yiaddr, 54: IPv4Address(server)}
            request = Message(
                op=Op.BOOTREQUEST, xid=xid, chaddr=chaddr, flags=0x8000, options=Options(options)
            )
            ack = _exchange(sock, encode(request), xid=xid, timeout=2)
            if ack is None or ack.message_type != MessageType.ACK or str(ack.yiaddr) != expected:
                problems.append(f"{mac}: no ACK of {expected}")
    return problems


# --- the churn ------------------------------------------------------------------------------


class Churn:
    def __init__(self, custom: Any, vm_client: Client) -> None:
        self.custom = custom
        self.client = vm_client
        self.macs = 0
        self.vms = 0
        self.exchanges = 0
        self.problems: list[str] = []

    def _cfg_ips(self) -> dict[str, str]:
        cfgs = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "virtualmachinenetworkconfigs"
        )
        found = {}
        for cfg in cfgs.get("items", []):
            for entry in cfg.get("spec", {}).get("networkconfig", []):
                if entry.get("ipaddress"):
                    found[cfg["metadata"]["name"]] = str(entry["ipaddress"])
        return found

    def _wait(self, done: Any, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(0.2)
        self.problems.append(f"timed out waiting for {what}")

    def cycle(self, size: int) -> None:
        names: dict[str, str] = {}
        for _ in range(size):
            self.macs += 1
            name = f"soak-vm-{self.macs}"
            names[name] = f"52:54:00:5a:{self.macs >> 8 & 0xFF:02x}:{self.macs & 0xFF:02x}"
            body = objects.vm(name, NAMESPACE, [("vlan100", "vlan100", names[name])])
            self.custom.create_namespaced_custom_object(*VMS[:2], NAMESPACE, VMS[2], body)
        self.vms += size
        self._wait(lambda: set(names) <= set(self._cfg_ips()), "reservations")
        ips = self._cfg_ips()
        pairs = [(mac, ips[name]) for name, mac in names.items() if name in ips]
        self.problems += call_in(
            self.client.netns, dora_all, self.client.ifname, pairs, SERVER_IP, timeout=60
        )
        self.exchanges += len(pairs)
        for name in names:
            with contextlib.suppress(ApiException):
                self.custom.delete_namespaced_custom_object(
                    "kubevirt.io", "v1", NAMESPACE, "virtualmachines", name
                )
        self._wait(lambda: not set(names) & set(self._cfg_ips()), "vmnetcfgs to go")


def growth(first: Sample, last: Sample) -> list[str]:
    flags = []
    if last.rss_kb - first.rss_kb > RSS_LIMIT_KB:
        flags.append(f"RSS grew {(last.rss_kb - first.rss_kb) / 1024:.1f} MB")
    if last.fds - first.fds > FD_LIMIT:
        flags.append(f"open fds grew by {last.fds - first.fds}")
    if last.threads - first.threads > THREAD_LIMIT:
        flags.append(f"threads grew by {last.threads - first.threads}")
    return flags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--vms-per-cycle", type=int, default=5)
    parser.add_argument("--sample", type=float, default=60, help="seconds between samples")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("soak: needs root (network namespaces)", file=sys.stderr)
        return 2
    if missing_binaries():
        print("soak: no API server binaries; run `make apiserver` first", file=sys.stderr)
        return 2
    with ApiServer() as api, netlab("kvsoak", server_address=f"{SERVER_IP}/16") as lab:
        api_client = config.new_client_from_config(config_file=str(api.kubeconfig))  # type: ignore[no-untyped-call]
        install_crds(api_client, KVIP_CRDS, KUBEVIRT_CRDS)
        custom: Any = client.CustomObjectsApi(api_client)
        client.CoreV1Api(api_client).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE))
        )
        custom.create_cluster_custom_object(GROUP, VERSION, "ippools", POOL)
        vm_nic = lab.add_client("52:54:00:5a:ff:ff")
        lab.add_address(vm_nic.netns, vm_nic.ifname, CLIENT_ADDRESS)
        with KvipProcess(api.kubeconfig, "--socket-netns", lab.server) as kvip:
            started = time.monotonic()
            samples = [sample(kvip.pid, "start", started)]
            churn = Churn(custom, vm_nic)
            churn.cycle(args.vms_per_cycle)
            samples.append(sample(kvip.pid, "warm", started))
            print(samples[0], samples[1], sep="\n", flush=True)
            end = started + args.minutes * 60
            next_sample = time.monotonic() + args.sample
            while time.monotonic() < end:
                churn.cycle(args.vms_per_cycle)
                if time.monotonic() >= next_sample:
                    samples.append(sample(kvip.pid, "sample", started))
                    print(samples[-1], flush=True)
                    next_sample += args.sample
            samples.append(sample(kvip.pid, "end", started))
            print(samples[-1])
            alive = kvip.proc.poll() is None
    flags = growth(samples[1], samples[-1])
    print(
        f"{args.minutes:g} min: {churn.vms} VMs created and deleted, {churn.exchanges} DHCP "
        f"exchanges, {len(churn.problems)} problems; kvip {'alive' if alive else 'DIED'}"
    )
    for problem in churn.problems[:20]:
        print(f"  problem: {problem}")
    for flag in flags:
        print(f"  GROWTH: {flag} (from the warm-up sample to the end)")
    return 0 if alive and not flags and not churn.problems else 1


if __name__ == "__main__":
    sys.exit(main())
