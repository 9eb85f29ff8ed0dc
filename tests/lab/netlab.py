"""A private wire for DHCP: network namespaces, a bridge per server port, veth clients.

Every packet a test or benchmark sends stays inside namespaces created here,
with addresses from 198.18.0.0/15 (RFC 2544's benchmarking range). Layout::

    server netns  <prefix><pid><n>        client netns  <server>c<k>
      bridge eth1 (198.18.0.1/16) ----- vc<k> === eth0 (MAC chosen by the test)
      bridge eth2 (198.19.0.1/16) ----- ...

A server port is a bridge holding the server address, or with ``veth=True`` a
veth ``eth1`` (holding the address) whose peer is enslaved to a bridge
``br-eth1``: closer to a pod's Multus interface. Every namespace is deleted on
``close()`` (processes inside are killed first), also when the body of
``netlab()`` raises or is interrupted; an atexit hook closes labs left open, and
``cleanup_stale(prefix)`` removes what a crashed run (dead pid) left behind.

Usable from tests and scripts alike: nothing here imports pytest.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ipaddress
import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

#: Only these addresses may appear on lab interfaces (RFC 2544 benchmarking range).
LAB_NETWORK = ipaddress.IPv4Network("198.18.0.0/15")
NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class LabError(Exception):
    """The lab could not be built or a command in it failed."""


@dataclass(frozen=True, slots=True)
class Port:
    """A server-side interface: ``ifname`` holds ``address``; clients hang off ``bridge``."""

    ifname: str
    address: ipaddress.IPv4Interface
    bridge: str


@dataclass(frozen=True, slots=True)
class Client:
    """One client namespace with one interface, wired to a server port's bridge."""

    netns: str
    ifname: str
    mac: str
    port: str


def require_lab_address(address: str | ipaddress.IPv4Interface) -> ipaddress.IPv4Interface:
    """Parse ``address`` (``a.b.c.d/len``), refusing anything outside 198.18.0.0/15."""
    iface = ipaddress.IPv4Interface(address)
    if not iface.network.subnet_of(LAB_NETWORK):
        raise LabError(f"{address} is outside {LAB_NETWORK}; lab wires use only that range")
    return iface


def _check_mac(mac: str) -> str:
    mac = mac.lower()
    if not _MAC.match(mac):
        raise LabError(f"not a MAC address: {mac!r}")
    return mac


def _ip(argv: Sequence[str], *, timeout: float = 15) -> None:
    result = subprocess.run(
        ["ip", *argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise LabError(f"ip {' '.join(argv)}: {result.stderr.strip()}")


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def netns_names() -> list[str]:
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def ns_argv(netns: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs ``argv`` inside ``netns``."""
    return ["ip", "netns", "exec", netns, *argv]


def run_in(
    netns: str,
    argv: Sequence[str],
    *,
    timeout: float = 30,
    check: bool = True,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in ``netns`` to completion (text mode, output captured by default).

    Raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds (the child is
    killed) and ``LabError`` on a non-zero exit when ``check``.
    """
    kwargs.setdefault("capture_output", True)
    result = subprocess.run(ns_argv(netns, argv), text=True, timeout=timeout, check=False, **kwargs)
    if check and result.returncode != 0:
        raise LabError(
            f"{' '.join(argv)} in {netns} exited {result.returncode}: "
            f"{(result.stderr or '').strip()[-2000:]}"
        )
    return result


def popen_in(netns: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` in ``netns``; the caller (or the lab's close) must stop it."""
    return subprocess.Popen(ns_argv(netns, argv), **kwargs)


def stop_process(proc: subprocess.Popen[Any], *, grace: float = 3) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; always reaps the child."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=grace)


def kill_netns_pids(netns: str, *, grace: float = 2) -> None:
    """Kill every process whose network namespace is ``netns`` (TERM, then KILL)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        result = subprocess.run(
            ["ip", "netns", "pids", netns], capture_output=True, text=True, check=False
        )
        pids = [int(p) for p in result.stdout.split() if p.isdigit() and int(p) != os.getpid()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it holds no namespace any more.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def delete_netns(netns: str) -> None:
    """Kill what runs in ``netns`` and delete it (its veths and bridges go with it)."""
    if not netns_exists(netns):
        return
    kill_netns_pids(netns)
    _ip(["netns", "del", netns])


# --- entering a namespace from Python ------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def inside(netns: str) -> Iterator[None]:
    """Move the calling thread into ``netns`` for the block, then back.

    Sockets created in the block stay in ``netns`` after it (a socket belongs
    to the namespace it was created in), so a test can open a server's sockets
    here and serve them from its own event loop. Only this thread moves.
    """
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(NETNS_DIR / netns, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def _call_child(
    netns: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    conn: multiprocessing.connection.Connection,
) -> None:
    try:
        fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
        _setns(fd)
        os.close(fd)
        conn.send((True, fn(*args)))
    except BaseException as exc:
        conn.send((False, repr(exc)))
    finally:
        conn.close()


def call_in(netns: str, fn: Callable[..., Any], *args: Any, timeout: float = 30) -> Any:
    """Run ``fn(*args)`` in a forked child inside ``netns``; return its (picklable) result.

    The child is killed after ``timeout`` seconds (``LabError``); an exception
    in ``fn`` comes back as ``LabError`` carrying its repr.
    """
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_call_child, args=(netns, fn, args, child), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):
            raise LabError(f"{getattr(fn, '__name__', fn)} in {netns}: no result in {timeout}s")
        ok, value = parent.recv()
    except EOFError as exc:
        raise LabError(f"{getattr(fn, '__name__', fn)} in {netns} died") from exc
    finally:
        parent.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    if not ok:
        raise LabError(f"{getattr(fn, '__name__', fn)} in {netns} raised {value}")
    return value


# --- the lab -------------------------------------------------------------------------

_open_labs: list[Lab] = []
_counter = 0


def _next_suffix() -> str:
    global _counter
    n, _counter = _counter, _counter + 1
    letters = ""
    while True:
        letters = chr(ord("a") + n % 26) + letters
        n = n // 26 - 1
        if n < 0:
            return letters


class Lab:
    """A server namespace with bridged ports and client namespaces on them.

    Build it with ``netlab()``; direct use must call ``close()`` in a ``finally``.
    """

    def __init__(self, prefix: str) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,15}", prefix):
            raise LabError(f"bad namespace prefix {prefix!r}")
        self.server = f"{prefix}{os.getpid()}{_next_suffix()}"
        self.ports: dict[str, Port] = {}
        self.clients: list[Client] = []
        self._namespaces: list[str] = []
        self._procs: list[subprocess.Popen[Any]] = []
        _open_labs.append(self)
        self._add_netns(self.server)

    def _add_netns(self, name: str) -> None:
        if netns_exists(name):
            raise LabError(f"namespace {name} already exists")
        _ip(["netns", "add", name])
        self._namespaces.append(name)
        _ip(["-n", name, "link", "set", "lo", "up"])
        # No IPv6: no router solicitations or DAD noise on the wire, nothing to wait for.
        for knob in ("all", "default"):
            run_in(name, ["sysctl", "-qw", f"net.ipv6.conf.{knob}.disable_ipv6=1"], check=False)

    def add_server_port(self, ifname: str, address: str, *, veth: bool = False) -> Port:
        """Add a server interface ``ifname`` holding ``address`` (inside 198.18.0.0/15).

        Each port has its own bridge, so two ports are two separate wires (two pools).
        """
        if ifname in self.ports:
            raise LabError(f"port {ifname} exists")
        iface = require_lab_address(address)
        srv = ["-n", self.server]
        if veth:
            bridge = f"br-{ifname}"[:15]
            _ip([*srv, "link", "add", bridge, "type", "bridge", "forward_delay", "0"])
            peer = f"{ifname}-br"[:15]
            _ip([*srv, "link", "add", ifname, "type", "veth", "peer", "name", peer])
            _ip([*srv, "link", "set", peer, "master", bridge, "up"])
        else:
            bridge = ifname
            _ip([*srv, "link", "add", bridge, "type", "bridge", "forward_delay", "0"])
        _ip([*srv, "link", "set", bridge, "up"])
        _ip([*srv, "addr", "add", str(iface), "dev", ifname])
        _ip([*srv, "link", "set", ifname, "up"])
        port = Port(ifname=ifname, address=iface, bridge=bridge)
        self.ports[ifname] = port
        return port

    def add_client(self, mac: str, *, port: str | None = None, ifname: str = "eth0") -> Client:
        """A new client namespace whose ``ifname`` (MAC ``mac``, up, no address) is on
        ``port``'s wire (default: the first port)."""
        if not self.ports:
            raise LabError("add a server port first")
        bridge = self.ports[port or next(iter(self.ports))].bridge
        index = len(self.clients) + 1
        netns = f"{self.server}c{index}"
        self._add_netns(netns)
        server_end = f"vc{index}"
        _ip(["-n", self.server, "link", "add", server_end, "type", "veth",
             "peer", "name", ifname, "netns", netns])  # fmt: skip
        _ip(["-n", self.server, "link", "set", server_end, "master", bridge, "up"])
        _ip(["-n", netns, "link", "set", ifname, "address", _check_mac(mac), "up"])
        client = Client(netns=netns, ifname=ifname, mac=mac.lower(), port=port or bridge)
        self.clients.append(client)
        return client

    def set_mac(self, client: Client, mac: str) -> Client:
        """Give ``client``'s interface another MAC (another VM, same namespace)."""
        mac = _check_mac(mac)
        _ip(["-n", client.netns, "link", "set", client.ifname, "down"])
        _ip(["-n", client.netns, "link", "set", client.ifname, "address", mac, "up"])
        return replace(client, mac=mac)

    def flush_addresses(self, client: Client) -> None:
        _ip(["-n", client.netns, "addr", "flush", "dev", client.ifname])

    def add_address(self, netns: str, ifname: str, address: str) -> None:
        _ip(["-n", netns, "addr", "add", str(require_lab_address(address)), "dev", ifname])

    def popen(self, netns: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Like ``popen_in``, but the lab stops the process on close."""
        if netns not in self._namespaces:
            raise LabError(f"{netns} is not part of this lab")
        proc = popen_in(netns, argv, **kwargs)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        """Stop started processes, kill everything inside, delete every namespace.

        Idempotent. Tries every namespace even if one fails; raises the first error.
        """
        errors: list[BaseException] = []
        for proc in reversed(self._procs):
            try:
                stop_process(proc)
            except BaseException as exc:  # one failure must not leak the rest
                errors.append(exc)
        self._procs.clear()
        for name in reversed(self._namespaces):
            try:
                delete_netns(name)
            except BaseException as exc:  # one failure must not leak the rest
                errors.append(exc)
        self._namespaces.clear()
        if self in _open_labs:
            _open_labs.remove(self)
        if errors:
            raise errors[0]

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(self._namespaces)


@contextlib.contextmanager
def netlab(
    prefix: str = "kvl",
    *,
    server_ifname: str | None = "eth1",
    server_address: str = "198.18.0.1/16",
    veth: bool = False,
) -> Iterator[Lab]:
    """A ``Lab`` with one server port (unless ``server_ifname`` is None), torn down on exit."""
    lab = Lab(prefix)
    try:
        if server_ifname is not None:
            lab.add_server_port(server_ifname, server_address, veth=veth)
        yield lab
    finally:
        lab.close()


def cleanup_stale(prefix: str, *, include_live: bool = False) -> list[str]:
    """Delete namespaces named ``<prefix><pid>...`` whose pid is dead (or all, if
    ``include_live``); return their names. Run it before a session to clear crashes."""
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)[a-z]+(c\d+)?$")
    removed = []
    for name in netns_names():
        match = pattern.match(name)
        if not match:
            continue
        pid = int(match.group(1))
        if include_live or (pid != os.getpid() and not _alive(pid)):
            delete_netns(name)
            removed.append(name)
    return removed


@atexit.register
def _close_open_labs() -> None:
    # Safety net for labs built without netlab() or abandoned by a crash in Python code.
    for lab in list(_open_labs):
        with contextlib.suppress(Exception):
            lab.close()


def is_root() -> bool:
    return os.geteuid() == 0
