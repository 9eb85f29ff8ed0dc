"""Real DHCP clients run once in a lab client namespace, each returning the parsed lease.

udhcpc, ISC dhclient, dhcpcd and systemd-networkd. Their hook scripts only
dump the environment to a temp dir (and, when asked, set the address inside
the client namespace): they never touch resolv.conf, the hostname or any host
file. dhcpcd and networkd run in a private mount (and UTS) namespace with
tmpfs over the directories they write, so nothing they store reaches the host.
Every runner has a timeout and kills what it started.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from netlab import Client, LabError, ns_argv, stop_process

# Clients get a clean environment so the dumped env holds only what they set.
CLIENT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
IPv4 = ipaddress.IPv4Address


class NoLeaseError(LabError):
    """The client finished or timed out without a lease."""


@dataclass(frozen=True, slots=True)
class Route:
    destination: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address


@dataclass(frozen=True, slots=True)
class Lease:
    """What a client reported it got, in one shape for every client."""

    client: str
    ip: ipaddress.IPv4Address
    mask: ipaddress.IPv4Address | None = None
    router: tuple[ipaddress.IPv4Address, ...] = ()
    dns: tuple[ipaddress.IPv4Address, ...] = ()
    domain: str | None = None
    search: tuple[str, ...] = ()
    lease_time: int | None = None
    t1: int | None = None
    t2: int | None = None
    mtu: int | None = None
    routes: tuple[Route, ...] = ()
    server_id: ipaddress.IPv4Address | None = None
    raw: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def prefixlen(self) -> int | None:
        if self.mask is None:
            return None
        return ipaddress.IPv4Network(f"0.0.0.0/{self.mask}").prefixlen


# --- parsing helpers -----------------------------------------------------------------


def _addrs(value: str | None) -> tuple[ipaddress.IPv4Address, ...]:
    return tuple(IPv4(v) for v in (value or "").replace(",", " ").split())


def _addr(value: str | None) -> ipaddress.IPv4Address | None:
    return IPv4(value) if value else None


def _int(value: str | None, *, base: int = 10) -> int | None:
    return int(value, base) if value else None


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(n.rstrip(".") for n in (value or "").strip("'\"").split())


def _pairs_routes(value: str | None) -> tuple[Route, ...]:
    """``"net/len gw net/len gw"`` (udhcpc, dhcpcd) to routes."""
    words = (value or "").split()
    return tuple(
        Route(ipaddress.IPv4Network(words[i]), IPv4(words[i + 1])) for i in range(0, len(words), 2)
    )


def _rfc3442_routes(value: str | None) -> tuple[Route, ...]:
    """dhclient's decimal byte dump of option 121 (RFC 3442 encoding) to routes."""
    data = [int(b) for b in (value or "").replace(",", " ").split()]
    routes, i = [], 0
    while i < len(data):
        width = data[i]
        octets = (width + 7) // 8
        dest = bytes(data[i + 1 : i + 1 + octets]).ljust(4, b"\0")
        gateway = bytes(data[i + 1 + octets : i + 5 + octets])
        net = ipaddress.IPv4Network((int.from_bytes(dest, "big"), width))
        routes.append(Route(net, IPv4(gateway)))
        i += 5 + octets
    return tuple(routes)


def read_env_dumps(directory: Path) -> list[tuple[str, dict[str, str]]]:
    """The hook's dumps, oldest first: (event, environment)."""
    dumps = []
    for path in sorted(directory.glob("*.env")):
        event = path.stem.split("-", 1)[1]
        env = {}
        for item in path.read_bytes().split(b"\0"):
            key, sep, value = item.decode(errors="replace").partition("=")
            if sep:
                env[key] = value
        dumps.append((event, env))
    return dumps


def _last_event(directory: Path, events: Sequence[str]) -> dict[str, str] | None:
    found = [env for event, env in read_env_dumps(directory) if event in events]
    return found[-1] if found else None


def _hook(directory: Path, *, event: str, configure: str = "") -> Path:
    """A hook script that dumps its env (NUL-separated) to ``directory`` per call."""
    dumps = directory / "dumps"
    dumps.mkdir(exist_ok=True)
    script = directory / "hook.sh"
    script.write_text(
        "#!/bin/sh\n"
        "# Written by kvip's tests: record the event, touch nothing outside the netns.\n"
        f"event={event}\n"
        f"n=$(ls {shlex.quote(str(dumps))} | wc -l)\n"
        f'env -0 > {shlex.quote(str(dumps))}/$(printf %03d "$n")-"$event".env\n'
        f"{configure}\n"
        "exit 0\n"
    )
    script.chmod(0o755)
    return script


def _run(
    client: Client, argv: Sequence[str], *, timeout: float
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ns_argv(client.netns, argv),
            env=CLIENT_ENV,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise NoLeaseError(f"{argv[0]} in {client.netns}: no lease in {timeout}s") from exc


@contextlib.contextmanager
def _workdir(workdir: Path | None, prefix: str) -> Iterator[Path]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
    else:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            yield Path(tmp)


def private_mounts(
    argv: Sequence[str], *, tmpfs: Sequence[str], hostname: str | None = None, ro_sys: bool = False
) -> list[str]:
    """Wrap ``argv`` to run in a private mount namespace (and a UTS namespace when
    ``hostname`` is given) with empty tmpfs over ``tmpfs`` dirs: what the client
    writes there vanishes with it and never reaches the host."""
    steps = [f"mount -t tmpfs tmpfs {shlex.quote(d)}" for d in tmpfs]
    if ro_sys:
        steps.append("mount -o remount,bind,ro /sys")
    if hostname:
        steps.append(f"hostname {shlex.quote(hostname)}")
    steps.append("exec " + shlex.join(argv))
    flags = ["-m", "--propagation", "private"] + (["-u"] if hostname else [])
    return ["unshare", *flags, "--", "sh", "-ec", " && ".join(steps)]


# --- udhcpc --------------------------------------------------------------------------

_UDHCPC_CONFIGURE = """case "$event" in
  bound|renew) ip addr replace "$ip/$mask" dev "$interface" ;;
  deconfig) ip addr flush dev "$interface" ;;
esac"""


def udhcpc_lease(env: Mapping[str, str]) -> Lease:
    return Lease(
        client="udhcpc",
        ip=IPv4(env["ip"]),
        mask=_addr(env.get("subnet")),
        router=_addrs(env.get("router")),
        dns=_addrs(env.get("dns")),
        domain=env.get("domain") or None,
        search=_names(env.get("search")),
        lease_time=_int(env.get("lease")),
        t1=_int(env.get("opt58"), base=16),
        t2=_int(env.get("opt59"), base=16),
        mtu=_int(env.get("mtu")),
        routes=_pairs_routes(env.get("staticroutes")),
        server_id=_addr(env.get("serverid")),
        raw=dict(env),
    )


def run_udhcpc(
    client: Client,
    *,
    timeout: float = 20,
    configure: bool = False,
    release: bool = False,
    arp_check: bool = False,
    requested_ip: str | None = None,
    extra_args: Sequence[str] = (),
    workdir: Path | None = None,
) -> Lease:
    """busybox udhcpc, one-shot (-q); ``release`` sends RELEASE on exit (-R),
    ``arp_check`` ARP-probes the offer and DECLINEs it if taken (-a)."""
    with _workdir(workdir, "kvip-udhcpc-") as work:
        hook = _hook(work, event='"$1"', configure=_UDHCPC_CONFIGURE if configure else "")
        tries = max(1, int(timeout // 2) - 1)
        argv = ["udhcpc", "-f", "-q", "-n", "-t", str(tries), "-T", "1", "-A", "1"]
        argv += ["-i", client.ifname, "-s", str(hook)]
        for opt in ("subnet", "router", "dns", "domain", "search", "lease", "mtu"):
            argv += ["-O", opt]
        argv += ["-O", "staticroutes", "-O", "58", "-O", "59"]
        argv += ["-R"] if release else []
        argv += ["-a"] if arp_check else []
        argv += ["-r", requested_ip] if requested_ip else []
        result = _run(client, [*argv, *extra_args], timeout=timeout)
        env = _last_event(work / "dumps", ("bound", "renew"))
        if env is None:
            raise NoLeaseError(f"udhcpc exited {result.returncode}: {result.stderr[-2000:]}")
        return udhcpc_lease(env)


# --- ISC dhclient --------------------------------------------------------------------

_DHCLIENT_CONFIGURE = """case "$reason" in
  BOUND|RENEW|REBIND|REBOOT) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
  EXPIRE|FAIL|RELEASE|STOP)
    [ -z "$old_ip_address" ] || ip addr del "$old_ip_address/$old_subnet_mask" dev "$interface" ;;
esac"""

DHCLIENT_CONF = """# kvip lab: ask for everything a kvip pool can send; never send the host name.
option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;
request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers,
        domain-search, interface-mtu, rfc3442-classless-static-routes, ntp-servers,
        dhcp-lease-time, dhcp-renewal-time, dhcp-rebinding-time;
timeout {timeout};
initial-interval 1;
backoff-cutoff 2;
"""


def dhclient_lease(env: Mapping[str, str]) -> Lease:
    return Lease(
        client="dhclient",
        ip=IPv4(env["new_ip_address"]),
        mask=_addr(env.get("new_subnet_mask")),
        router=_addrs(env.get("new_routers")),
        dns=_addrs(env.get("new_domain_name_servers")),
        domain=env.get("new_domain_name") or None,
        search=_names(env.get("new_domain_search")),
        lease_time=_int(env.get("new_dhcp_lease_time")),
        t1=_int(env.get("new_dhcp_renewal_time")),
        t2=_int(env.get("new_dhcp_rebinding_time")),
        mtu=_int(env.get("new_interface_mtu")),
        routes=_rfc3442_routes(env.get("new_rfc3442_classless_static_routes")),
        server_id=_addr(env.get("new_dhcp_server_identifier")),
        raw=dict(env),
    )


def dhclient_lease_file(client: Client, *, ip: str, server_id: str) -> str:
    """A lease file naming ``ip``, valid for years: dhclient then starts in
    INIT-REBOOT, asking for ``ip`` (RFC 2131 3.2); a wrong one draws a NAK."""
    return (
        "lease {\n"
        f'  interface "{client.ifname}";\n'
        f"  fixed-address {ip};\n"
        "  option subnet-mask 255.255.0.0;\n"
        "  option dhcp-lease-time 3600;\n"
        "  option dhcp-message-type 5;\n"
        f"  option dhcp-server-identifier {server_id};\n"
        "  renew 4 2037/01/01 00:00:00;\n"
        "  rebind 4 2037/01/01 00:00:00;\n"
        "  expire 4 2037/01/01 00:00:00;\n"
        "}\n"
    )


def run_dhclient(
    client: Client,
    *,
    timeout: float = 20,
    configure: bool = False,
    release: bool = False,
    lease_file: str | None = None,
    workdir: Path | None = None,
) -> Lease:
    """ISC dhclient -1. ``lease_file`` seeds its lease file (INIT-REBOOT);
    ``release`` runs ``dhclient -r`` after binding (needs ``configure``)."""
    with _workdir(workdir, "kvip-dhclient-") as work:
        hook = _hook(work, event='"$reason"', configure=_DHCLIENT_CONFIGURE if configure else "")
        conf, leases, pidfile = work / "dhclient.conf", work / "dhclient.leases", work / "pid"
        conf.write_text(DHCLIENT_CONF.format(timeout=max(1, int(timeout) - 2)))
        if lease_file is not None:
            leases.write_text(lease_file)
        files = ["-sf", str(hook), "-cf", str(conf), "-lf", str(leases), "-pf", str(pidfile)]
        try:
            # dhclient -1 forks a daemon once bound; the foreground process then exits 0.
            result = _run(client, ["dhclient", "-1", "-v", *files, client.ifname], timeout=timeout)
            env = _last_event(work / "dumps", ("BOUND", "REBOOT", "RENEW", "REBIND"))
            if env is None:
                raise NoLeaseError(f"dhclient exited {result.returncode}: {result.stderr[-2000:]}")
            if release:
                _run(client, ["dhclient", "-r", *files, client.ifname], timeout=timeout)
            return dhclient_lease(env)
        finally:
            _kill_pidfile(pidfile)


def _kill_pidfile(pidfile: Path) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)


# --- dhcpcd --------------------------------------------------------------------------

DHCPCD_CONF = """# kvip lab: IPv4 only, no link-local, no waiting, no hooks that touch the host.
ipv4only
noipv4ll
{arp}
nodelay
nohook resolv.conf, hostname, ntp.conf, timesyncd.conf
option domain_name_servers, domain_name, domain_search, classless_static_routes
option interface_mtu
"""


def dhcpcd_lease(env: Mapping[str, str]) -> Lease:
    return Lease(
        client="dhcpcd",
        ip=IPv4(env["new_ip_address"]),
        mask=_addr(env.get("new_subnet_mask")),
        router=_addrs(env.get("new_routers")),
        dns=_addrs(env.get("new_domain_name_servers")),
        domain=env.get("new_domain_name") or None,
        search=_names(env.get("new_domain_search")),
        lease_time=_int(env.get("new_dhcp_lease_time")),
        t1=_int(env.get("new_dhcp_renewal_time")),
        t2=_int(env.get("new_dhcp_rebinding_time")),
        mtu=_int(env.get("new_interface_mtu")),
        routes=_pairs_routes(env.get("new_classless_static_routes")),
        server_id=_addr(env.get("new_dhcp_server_identifier")),
        raw=dict(env),
    )


def run_dhcpcd(
    client: Client,
    *,
    timeout: float = 20,
    arp: bool = False,
    inform: str | None = None,
    hostname: str | None = None,
    workdir: Path | None = None,
) -> Lease:
    """dhcpcd -1 -4 -B; it sets the address itself (inside the namespace). ``arp``
    keeps its ARP probe (a taken address is DECLINEd); ``inform`` = ``ADDR/LEN``
    sends an INFORM for an address configured by hand."""
    with _workdir(workdir, "kvip-dhcpcd-") as work:
        hook = _hook(work, event='"$reason"')
        conf = work / "dhcpcd.conf"
        conf.write_text(DHCPCD_CONF.format(arp="" if arp else "noarp"))
        wait = max(1, int(timeout) - 3)
        argv = ["dhcpcd", "-1", "-4", "-B", "-t", str(wait), "-f", str(conf), "-c", str(hook)]
        # --inform takes an optional argument: it must be attached with "=".
        argv += [f"--inform={inform}"] if inform else []
        argv = private_mounts(
            [*argv, client.ifname], tmpfs=["/var/lib/dhcpcd", "/run"], hostname=hostname
        )
        result = _run(client, argv, timeout=timeout)
        env = _last_event(work / "dumps", ("BOUND", "INFORM", "REBOOT", "RENEW", "REBIND"))
        if env is None:
            raise NoLeaseError(f"dhcpcd exited {result.returncode}: {result.stderr[-2000:]}")
        if "new_ip_address" not in env:  # INFORM: no address is assigned (RFC 2131 3.4)
            env = {**env, "new_ip_address": inform.split("/")[0] if inform else "0.0.0.0"}
        return dhcpcd_lease(env)


# --- systemd-networkd ----------------------------------------------------------------

NETWORKD = "/lib/systemd/systemd-networkd"


def networkd_unit(client: Client) -> str:
    return (
        "[Match]\n"
        f"Name={client.ifname}\n\n"
        "[Network]\n"
        "DHCP=ipv4\n"
        "LinkLocalAddressing=no\n"
        "IPv6AcceptRA=no\n\n"
        "[DHCPv4]\n"
        "UseDomains=yes\n"
        "UseMTU=yes\n"
        "SendRelease=yes\n"
    )


def networkd_lease(values: Mapping[str, str]) -> Lease:
    routes = tuple(
        Route(ipaddress.IPv4Network(dst), IPv4(gw))
        for dst, _, gw in (r.partition(",") for r in values.get("CLASSLESS_ROUTES", "").split())
    )
    return Lease(
        client="systemd-networkd",
        ip=IPv4(values["ADDRESS"]),
        mask=_addr(values.get("NETMASK")),
        router=_addrs(values.get("ROUTER")),
        dns=_addrs(values.get("DNS")),
        domain=values.get("DOMAINNAME") or None,
        search=_names(values.get("DOMAIN_SEARCH_LIST")),
        lease_time=_int(values.get("LIFETIME")),
        t1=_int(values.get("T1")),
        t2=_int(values.get("T2")),
        mtu=_int(values.get("MTU")),
        routes=routes,
        server_id=_addr(values.get("SERVER_ADDRESS")),
        raw=dict(values),
    )


def run_networkd(
    client: Client,
    *,
    timeout: float = 20,
    hostname: str | None = "vm-lab",
    workdir: Path | None = None,
) -> Lease:
    """systemd-networkd in container mode (read-only /sys, so it does not wait for
    udev) in a private mount namespace of the client netns; stopped (SIGTERM,
    which RELEASEs the lease) once the lease file appears."""
    with _workdir(workdir, "kvip-networkd-") as work:
        # The lease file is copied out to the workdir by the shell wrapper itself,
        # since /run/systemd is a tmpfs visible only inside its mount namespace.
        net = work / "network"
        net.mkdir(exist_ok=True)
        (net / "50-lab.network").write_text(networkd_unit(client))
        out = work / "lease"
        # A made-up machine id: networkd derives its DUID client id from it, and the
        # host's (even hashed) has no business in captures.
        machine_id = work / "machine-id"
        machine_id.write_text("4b7669704c61624d616368696e654964\n")
        script = (
            "mount -t tmpfs tmpfs /run/systemd && mount -t tmpfs tmpfs /etc/systemd/network"
            f" && mount --bind {shlex.quote(str(machine_id))} /etc/machine-id"
            f" && cp {shlex.quote(str(net))}/*.network /etc/systemd/network/"
            " && mount -o remount,bind,ro /sys"
            + (f" && hostname {shlex.quote(hostname)}" if hostname else "")
            + f" && {{ {NETWORKD} & pid=$!; "
            f"while [ ! -s /run/systemd/netif/leases/* ] 2>/dev/null; do"
            f" kill -0 $pid || exit 3; sleep 0.1; done; "
            f"sleep 0.2; cat /run/systemd/netif/leases/* > {shlex.quote(str(out))}; "
            "kill -TERM $pid; wait $pid; }"
        )
        flags = ["-m", "--propagation", "private"] + (["-u"] if hostname else [])
        argv = ["unshare", *flags, "--", "sh", "-c", script]
        env = dict(CLIENT_ENV, SYSTEMD_LOG_LEVEL="debug")
        proc = subprocess.Popen(
            ns_argv(client.netns, argv),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            msg = f"systemd-networkd in {client.netns}: no lease in {timeout}s"
            raise NoLeaseError(msg) from exc
        finally:
            stop_process(proc)
        if not out.exists():
            tail = output.decode(errors="replace")[-3000:]
            raise NoLeaseError(f"systemd-networkd exited {proc.returncode}: {tail}")
        values = {}
        for line in out.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                values[key] = value
        return networkd_lease(values)
