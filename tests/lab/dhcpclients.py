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
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.lab.leases import (
    CLIENT_ENV,
    IPv4,
    Lease,
    NoLeaseError,
    Route,
    addr,
    addrs,
    int_or_none,
    kill_group,
    last_event,
    names,
    pair_routes,
    private_mounts,
    rfc3442_routes,
    run_client,
    wait_event,
    workdir_for,
    write_hook,
)
from tests.lab.netlab import Client, ns_argv, stop_process

__all__ = ["Lease", "NoLeaseError", "Route", "private_mounts"]

# --- udhcpc --------------------------------------------------------------------------

UDHCPC_CONFIGURE = """case "$event" in
  bound|renew) ip addr replace "$ip/$mask" dev "$interface" ;;
  deconfig) ip addr flush dev "$interface" ;;
esac"""


def udhcpc_lease(env: Mapping[str, str]) -> Lease:
    return Lease(
        client="udhcpc",
        ip=IPv4(env["ip"]),
        mask=addr(env.get("subnet")),
        router=addrs(env.get("router")),
        dns=addrs(env.get("dns")),
        domain=env.get("domain") or None,
        search=names(env.get("search")),
        lease_time=int_or_none(env.get("lease")),
        t1=int_or_none(env.get("opt58"), base=16),
        t2=int_or_none(env.get("opt59"), base=16),
        mtu=int_or_none(env.get("mtu")),
        routes=pair_routes(env.get("staticroutes")),
        server_id=addr(env.get("serverid")),
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
    renew: bool = False,
    extra_args: Sequence[str] = (),
    workdir: Path | None = None,
) -> Lease:
    """busybox udhcpc, one-shot (-q) unless asked to renew or release;
    ``arp_check`` ARP-probes the offer and DECLINEs it if taken (-a).

    ``renew`` keeps it running after the lease, renews once with SIGUSR1 (a
    unicast REQUEST from the leased address, RFC 2131 4.4.5 RENEWING) and
    returns the renewed lease. ``release`` stops it with SIGTERM and -R, which
    sends a RELEASE (with -q it would just quit). Both imply ``configure``:
    udhcpc sends them from the leased address."""
    configure = configure or renew or release
    with workdir_for(workdir, "kvip-udhcpc-") as work:
        hook = write_hook(work, event='"$1"', configure=UDHCPC_CONFIGURE if configure else "")
        tries = max(1, int(timeout // 2) - 1)
        argv = ["udhcpc", "-f", "-q", "-n", "-t", str(tries), "-T", "1", "-A", "1"]
        argv += ["-i", client.ifname, "-s", str(hook)]
        for opt in ("subnet", "router", "dns", "domain", "search", "lease", "mtu"):
            argv += ["-O", opt]
        argv += ["-O", "staticroutes", "-O", "58", "-O", "59"]
        argv += ["-R"] if release else []
        argv += ["-a"] if arp_check else []
        argv += ["-r", requested_ip] if requested_ip else []
        if renew or release:
            argv = [a for a in argv if a != "-q"]
            return _udhcpc_daemon(
                client, [*argv, *extra_args], work=work, timeout=timeout, renew=renew
            )
        result = run_client(client, [*argv, *extra_args], timeout=timeout)
        env = last_event(work / "dumps", ("bound", "renew"))
        if env is None:
            raise NoLeaseError(f"udhcpc exited {result.returncode}: {result.stderr[-2000:]}")
        return udhcpc_lease(env)


def _udhcpc_daemon(
    client: Client, argv: list[str], *, work: Path, timeout: float, renew: bool
) -> Lease:
    deadline = time.monotonic() + timeout
    proc = subprocess.Popen(
        ns_argv(client.netns, argv),
        env=CLIENT_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        env = wait_event(work, ("bound",), proc=proc, deadline=deadline)
        if env is None:
            raise NoLeaseError(f"udhcpc in {client.netns}: no lease")
        if renew:
            proc.send_signal(signal.SIGUSR1)  # `ip netns exec` exec()s, so this is udhcpc
            env = wait_event(work, ("renew", "bound"), proc=proc, deadline=deadline)
            if env is None:
                raise NoLeaseError(f"udhcpc in {client.netns}: renewal got no ACK")
        stop_process(proc)  # with -R, SIGTERM releases the lease first
        return udhcpc_lease(env)
    finally:
        if proc.poll() is None:
            kill_group(proc)


# --- ISC dhclient --------------------------------------------------------------------

DHCLIENT_CONFIGURE = """case "$reason" in
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


def _isc_style_lease(client: str, env: Mapping[str, str], routes: tuple[Route, ...]) -> Lease:
    """dhclient and dhcpcd hand their hooks the same new_* variables."""
    return Lease(
        client=client,
        ip=IPv4(env["new_ip_address"]),
        mask=addr(env.get("new_subnet_mask")),
        router=addrs(env.get("new_routers")),
        dns=addrs(env.get("new_domain_name_servers")),
        domain=env.get("new_domain_name") or None,
        search=names(env.get("new_domain_search")),
        lease_time=int_or_none(env.get("new_dhcp_lease_time")),
        t1=int_or_none(env.get("new_dhcp_renewal_time")),
        t2=int_or_none(env.get("new_dhcp_rebinding_time")),
        mtu=int_or_none(env.get("new_interface_mtu")),
        routes=routes,
        server_id=addr(env.get("new_dhcp_server_identifier")),
        raw=dict(env),
    )


def dhclient_lease(env: Mapping[str, str]) -> Lease:
    routes = rfc3442_routes(env.get("new_rfc3442_classless_static_routes"))
    return _isc_style_lease("dhclient", env, routes)


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
    with workdir_for(workdir, "kvip-dhclient-") as work:
        setup = DHCLIENT_CONFIGURE if configure else ""
        hook = write_hook(work, event='"$reason"', configure=setup)
        conf, leases, pidfile = work / "dhclient.conf", work / "dhclient.leases", work / "pid"
        conf.write_text(DHCLIENT_CONF.format(timeout=max(1, int(timeout) - 2)))
        if lease_file is not None:
            leases.write_text(lease_file)
        files = ["-sf", str(hook), "-cf", str(conf), "-lf", str(leases), "-pf", str(pidfile)]
        try:
            # dhclient -1 forks a daemon once bound; the foreground process then exits 0.
            result = run_client(
                client, ["dhclient", "-1", "-v", *files, client.ifname], timeout=timeout
            )
            env = last_event(work / "dumps", ("BOUND", "REBOOT", "RENEW", "REBIND"))
            if env is None:
                raise NoLeaseError(f"dhclient exited {result.returncode}: {result.stderr[-2000:]}")
            if release:
                run_client(client, ["dhclient", "-r", *files, client.ifname], timeout=timeout)
            return dhclient_lease(env)
        finally:
            _kill_pidfile(pidfile)


def _kill_pidfile(pidfile: Path, *, grace: float = 3) -> None:
    """SIGTERM the daemon named in ``pidfile`` and wait for it (then SIGKILL), so
    it no longer writes into the work dir when that is removed."""
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# --- dhcpcd --------------------------------------------------------------------------

DHCPCD_CONF = """# kvip lab: IPv4 only, no link-local, no waiting, no hooks that touch the host.
ipv4only
noipv4ll
{arp}
nodelay
nohook resolv.conf, hostname, ntp.conf, timesyncd.conf
# The default vendor class names the host's kernel build; captures need not carry it.
vendorclassid dhcpcd-9.4.1:Linux-6.1.0:x86_64:GenuineIntel
option domain_name_servers, domain_name, domain_search, classless_static_routes
option interface_mtu
"""


def dhcpcd_lease(env: Mapping[str, str]) -> Lease:
    return _isc_style_lease("dhcpcd", env, pair_routes(env.get("new_classless_static_routes")))


def run_dhcpcd(
    client: Client,
    *,
    timeout: float = 20,
    arp: bool = False,
    inform: str | None = None,
    release: bool = False,
    hostname: str | None = None,
    workdir: Path | None = None,
) -> Lease:
    """dhcpcd -1 -4 -B; it sets the address itself (inside the namespace). ``arp``
    keeps its ARP probe (a taken address is DECLINEd); ``inform`` = ``ADDR/LEN``
    sends an INFORM for an address configured by hand; ``release`` keeps dhcpcd
    running until bound, then has ``dhcpcd -k`` RELEASE the lease."""
    with workdir_for(workdir, "kvip-dhcpcd-") as work:
        hook = write_hook(work, event='"$reason"')
        conf = work / "dhcpcd.conf"
        conf.write_text(DHCPCD_CONF.format(arp="" if arp else "noarp"))
        wait = max(1, int(timeout) - 3)
        argv = ["dhcpcd", "-1", "-4", "-B", "-t", str(wait), "-f", str(conf), "-c", str(hook)]
        # --inform takes an optional argument, which getopt only sees when glued with "=".
        argv += [f"--inform={inform}"] if inform else []
        argv.append(client.ifname)
        if inform and not arp:
            # Without its ARP probe dhcpcd never adds the address itself, and it only
            # INFORMs from an address the interface holds.
            subprocess.run(
                ["ip", "-n", client.netns, "addr", "replace", inform, "dev", client.ifname],
                check=True,
                timeout=10,
            )
        if release:
            # Not one-shot: start it, wait for BOUND, then ask the daemon to release
            # over its control socket (which lives in this mount namespace's /run).
            dumps = shlex.quote(str(work / "dumps"))
            script = (
                f"{shlex.join([a for a in argv if a != '-1'])} & pid=$!; "
                f"until ls {dumps} | grep -q BOUND; do kill -0 $pid || exit 3; sleep 0.1; done; "
                f"dhcpcd -4 -k -f {shlex.quote(str(conf))} {client.ifname}; wait $pid"
            )
            argv = ["sh", "-c", script]
        argv = private_mounts(argv, tmpfs=["/var/lib/dhcpcd", "/run"], hostname=hostname)
        result = run_client(client, argv, timeout=timeout)
        env = last_event(work / "dumps", ("BOUND", "INFORM", "REBOOT", "RENEW", "REBIND"))
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
        mask=addr(values.get("NETMASK")),
        router=addrs(values.get("ROUTER")),
        dns=addrs(values.get("DNS")),
        domain=values.get("DOMAINNAME") or None,
        search=names(values.get("DOMAIN_SEARCH_LIST")),
        lease_time=int_or_none(values.get("LIFETIME")),
        t1=int_or_none(values.get("T1")),
        t2=int_or_none(values.get("T2")),
        mtu=int_or_none(values.get("MTU")),
        routes=routes,
        server_id=addr(values.get("SERVER_ADDRESS")),
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
    with workdir_for(workdir, "kvip-networkd-") as work:
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
