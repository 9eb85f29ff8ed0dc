"""Real DHCPv6 clients as long-running daemons in a lab client namespace:
dhclient -6, dhcpcd -6, wide-dhcpv6-client (dhcp6c) and systemd-networkd
(started by a Router Advertisement with the M flag).

Each runner starts its client, waits for a lease (``lease()``), lets the
test watch it renew and rebind on the server's timers, and ends it either by
releasing the lease (``release()``) or without a word to the server
(``stop()``). Hooks only dump their environment (dhclient's also sets the
address inside the namespace, as its stock script would); dhcpcd, dhcp6c and
networkd run in a private mount namespace with tmpfs over what they write
(DUID files, /run), so nothing reaches the host. Everything is killed on exit.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import signal
from collections.abc import Mapping
from pathlib import Path

from tests.lab.dhcp6runner import Client6, addresses, int_or_none, names, private_daemon
from tests.lab.dhcp6watch import Lease6, global_addresses
from tests.lab.leases import CLIENT_ENV, last_event, write_hook
from tests.lab.netlab import Client, LabError, run_in

__all__ = ["CLIENTS6", "Client6", "Dhclient6", "Dhcp6c", "Dhcpcd6", "Networkd6"]

IPv6 = ipaddress.IPv6Address
NETWORKD = "/lib/systemd/systemd-networkd"

# --- ISC dhclient -6 -----------------------------------------------------------------

DHCLIENT6_CONF = """# kvip lab: ask for DNS servers and the search list; never send the host name.
request dhcp6.name-servers, dhcp6.domain-search;
initial-interval 1;
backoff-cutoff 2;
"""

# What dhclient-script would do for DHCPv6, inside the client's namespace only.
DHCLIENT6_CONFIGURE = """case "$reason" in
BOUND6|RENEW6|REBIND6|REBOOT6)
  ip -6 addr replace "$new_ip6_address/$new_ip6_prefixlen" dev "$interface" \\
    valid_lft "$new_max_life" preferred_lft "$new_preferred_life" ;;
RELEASE6|EXPIRE6|STOP6)
  [ -n "$old_ip6_address" ] && \\
    ip -6 addr del "$old_ip6_address/$old_ip6_prefixlen" dev "$interface" ;;
esac"""


class Dhclient6(Client6):
    """ISC dhclient -6 in the foreground (-d); RELEASE by ``dhclient -6 -r``."""

    name = "dhclient"
    bound_events = ("BOUND6", "RENEW6", "REBIND6", "REBOOT6")

    def files(self) -> list[str]:
        hook = write_hook(self.work, event='"$reason"', configure=DHCLIENT6_CONFIGURE)
        conf = self.work / "dhclient6.conf"
        conf.write_text(DHCLIENT6_CONF)
        leases, pid = self.work / "dhclient6.leases", self.work / "dhclient6.pid"
        return ["-sf", str(hook), "-cf", str(conf), "-lf", str(leases), "-pf", str(pid)]

    def argv(self) -> list[str]:
        return ["dhclient", "-6", "-d", "-v", *self.files(), self.client.ifname]

    def parse(self, env: Mapping[str, str]) -> Lease6:
        return Lease6(
            client=self.name,
            address=IPv6(env["new_ip6_address"]),
            dns=addresses(env.get("new_dhcp6_name_servers")),
            search=names(env.get("new_dhcp6_domain_search")),
            preferred_lifetime=int_or_none(env.get("new_preferred_life")),
            valid_lifetime=int_or_none(env.get("new_max_life")),
            raw=dict(env),
        )

    def release(self, *, timeout: float = 10) -> None:
        # -r stops the running daemon (named in the pid file), then releases
        # the lease from the lease file and runs the hook (RELEASE6).
        argv = ["dhclient", "-6", "-r", "-v", *self.files(), self.client.ifname]
        run_in(self.client.netns, argv, timeout=timeout, env=CLIENT_ENV)
        self._signal(signal.SIGTERM, timeout=timeout)


# --- dhcpcd -6 -----------------------------------------------------------------------

DHCPCD6_CONF = """# kvip lab: DHCPv6 only, no router solicitation, no hooks that touch the host.
ipv6only
noipv6rs
nodelay
ia_na 1
nohook resolv.conf, hostname, ntp.conf, timesyncd.conf
option dhcp6_name_servers, dhcp6_domain_search
"""


class Dhcpcd6(Client6):
    """dhcpcd -6 in the foreground (-B), DHCPv6 without waiting for an RA; it
    sets the address itself. RELEASE by ``dhcpcd -6 -k`` over its control
    socket (in its private /run)."""

    name = "dhcpcd"
    bound_events = ("BOUND6", "RENEW6", "REBIND6", "REBOOT6")

    def argv(self) -> list[str]:
        hook = write_hook(self.work, event='"$reason"')
        conf = self.work / "dhcpcd6.conf"
        conf.write_text(DHCPCD6_CONF)
        argv = ["dhcpcd", "-6", "-B", "-f", str(conf), "-c", str(hook), self.client.ifname]
        return private_daemon(argv, tmpfs=["/var/lib/dhcpcd", "/run"], hostname="guest-dhcpcd6")

    def parse(self, env: Mapping[str, str]) -> Lease6:
        return Lease6(
            client=self.name,
            address=IPv6(env["new_dhcp6_ia_na1_ia_addr1"]),
            dns=addresses(env.get("new_dhcp6_name_servers")),
            search=names(env.get("new_dhcp6_domain_search")),
            preferred_lifetime=int_or_none(env.get("new_dhcp6_ia_na1_ia_addr1_pltime")),
            valid_lifetime=int_or_none(env.get("new_dhcp6_ia_na1_ia_addr1_vltime")),
            raw=dict(env),
        )

    def release(self, *, timeout: float = 10) -> None:
        conf = str(self.work / "dhcpcd6.conf")
        self.in_mounts(["dhcpcd", "-6", "-k", "-f", conf, self.client.ifname], timeout=timeout)
        self._signal(signal.SIGTERM, timeout=timeout)

    def stop(self, *, timeout: float = 5) -> None:
        conf = str(self.work / "dhcpcd6.conf")
        self.in_mounts(["dhcpcd", "-6", "-x", "-f", conf, self.client.ifname], timeout=timeout)
        self._signal(signal.SIGTERM, timeout=timeout)


# --- wide-dhcpv6-client --------------------------------------------------------------

DHCP6C_CONF = """# kvip lab: one IA_NA, DNS servers and search list; the script only records.
interface {ifname} {{
    send ia-na 1;
    request domain-name-servers;
    request domain-name;
    script "{script}";
}};
id-assoc na 1 {{ }};
"""


_DHCP6C_ADDRESS = re.compile(r"IA_NA address: (\S+) pltime=(\d+) vltime=(\d+)")


class Dhcp6c(Client6):
    """wide-dhcpv6-client's dhcp6c in the foreground (-f); it sets the address
    itself and reports only options to its script (with $REASON), so the
    address and lifetimes are read from the interface. SIGTERM releases."""

    name = "dhcp6c"
    #: Debian's dhcp6c runs its script after each REPLY with REASON=NBI.
    bound_events = ("NBI", "REPLY")

    def argv(self) -> list[str]:
        hook = write_hook(self.work, event='"${REASON:-none}"')
        conf = self.work / "dhcp6c.conf"
        conf.write_text(DHCP6C_CONF.format(ifname=self.client.ifname, script=hook))
        argv = ["dhcp6c", "-f", "-D", "-c", str(conf), "-p", "/run/dhcp6c.pid", self.client.ifname]
        return private_daemon(argv, tmpfs=["/var/lib/dhcpv6", "/run"], hostname="guest-dhcp6c")

    def reported(self) -> Lease6 | None:
        env = last_event(self.work / "dumps", self.bound_events)
        if env is None:
            return None
        # It puts the address on the interface with infinite lifetimes and
        # keeps the real ones to itself: they are read from its debug log.
        granted = _DHCP6C_ADDRESS.findall(self.output())
        if not granted:
            return None
        address, preferred, valid = granted[-1]
        return Lease6(
            client=self.name,
            address=IPv6(address),
            dns=addresses(env.get("new_domain_name_servers")),
            search=names(env.get("new_domain_name")),
            preferred_lifetime=int(preferred),
            valid_lifetime=int(valid),
            raw=dict(env),
        )

    def release(self, *, timeout: float = 10) -> None:
        self._signal(signal.SIGTERM, timeout=timeout)

    def stop(self, *, timeout: float = 5) -> None:
        # dhcp6c releases on SIGTERM and SIGHUP; only SIGKILL ends it silently.
        self.kill()


# --- systemd-networkd ----------------------------------------------------------------

NETWORKD6_UNIT = """[Match]
Name={ifname}

[Network]
DHCP=ipv6
IPv6AcceptRA=yes

[DHCPv6]
UseDNS=yes
UseDomains=yes
{duid}

[IPv6AcceptRA]
DHCPv6Client=yes
UseDNS=no
"""


class Networkd6(Client6):
    """systemd-networkd in container mode in private mount and UTS namespaces,
    starting DHCPv6 on an RA with the M flag (radvd or kvip's advertiser).
    The DNS servers and search list are read from its link state file, the
    address and lifetimes from the interface."""

    name = "networkd"

    def __init__(self, client: Client, workdir: Path, *, duid_type: str | None = None) -> None:
        """``duid_type``: networkd's DUIDType= (None: its default, DUID-EN made
        from the machine id; "link-layer": DUID-LL, which Kea can match to a
        MAC reservation)."""
        super().__init__(client, workdir)
        self.duid_type = duid_type

    def argv(self) -> list[str]:
        net = self.work / "network"
        net.mkdir(exist_ok=True)
        (net / "50-lab.network").write_text(
            NETWORKD6_UNIT.format(
                ifname=self.client.ifname,
                duid=f"DUIDType={self.duid_type}" if self.duid_type else "",
            )
        )
        machine_id = self.work / "machine-id"
        machine_id.write_text("4b7669704c61624d616368696e654964\n")
        steps = [
            "mount -t tmpfs tmpfs /run/systemd",
            "mount -t tmpfs tmpfs /etc/systemd/network",
            f"mount --bind {shlex.quote(str(machine_id))} /etc/machine-id",
            f"cp {shlex.quote(str(net))}/50-lab.network /etc/systemd/network/",
            "mount -o remount,bind,ro /sys",
            "hostname guest-networkd6",
            f"exec {NETWORKD}",
        ]
        return [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "-u",
            "--",
            "sh",
            "-ec",
            " && ".join(steps),
        ]

    def env(self) -> dict[str, str]:
        return dict(CLIENT_ENV, SYSTEMD_LOG_LEVEL="debug")

    def state(self) -> dict[str, str]:
        index = run_in(self.client.netns, ["cat", f"/sys/class/net/{self.client.ifname}/ifindex"])
        try:
            text = self.read_private(f"/run/systemd/netif/links/{index.stdout.strip()}").decode()
        except FileNotFoundError:
            return {}
        values = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                values[key] = value
        return values

    def replies(self) -> int:
        return self.output().count("DHCPv6 client: Processed Reply message")

    def reported(self) -> Lease6 | None:
        values = self.state()
        held = global_addresses(self.client)
        if not held or not values.get("DNS"):
            return None
        return Lease6(
            client=self.name,
            address=held[0].address,
            dns=addresses(values.get("DNS")),
            search=names(values.get("DOMAINS")),
            preferred_lifetime=held[0].preferred_left,
            valid_lifetime=held[0].valid_left,
            raw=values,
        )

    #: networkd 252 leaves its DHCPv6 lease (and address) in place when it
    #: exits, for the next start to pick up, and offers no way to release
    #: without its D-Bus API.
    releases = False

    def release(self, *, timeout: float = 10) -> None:
        raise LabError("systemd-networkd 252 sends no RELEASE (it keeps the lease on exit)")

    def stop(self, *, timeout: float = 5) -> None:
        self._signal(signal.SIGTERM, timeout=timeout)


CLIENTS6: dict[str, type[Client6]] = {
    "dhclient": Dhclient6,
    "dhcpcd": Dhcpcd6,
    "dhcp6c": Dhcp6c,
    "networkd": Networkd6,
}
