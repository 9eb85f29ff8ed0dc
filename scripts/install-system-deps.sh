#!/usr/bin/env bash
# Installs the Debian packages kvip's tests, demo and benchmarks use: real DHCP
# clients and servers (DHCPv4 and DHCPv6, radvd for Router Advertisements,
# ndisc6 for rdisc6), network namespace tools, and promtool (package
# prometheus) for the alert rules' unit tests. Idempotent: installs only what
# is missing, and runs `apt-get update` only when something is.
set -euo pipefail

packages=(
    iproute2 procps iputils-ping util-linux
    isc-dhcp-client udhcpc dhcpcd-base systemd
    nmap kea-admin kea-dhcp4-server dnsmasq-base tcpdump
    radvd wide-dhcpv6-client ndisc6 kea-dhcp6-server
    prometheus
)

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: missing ${missing[*]}; run as root to install them" >&2
    exit 1
fi
echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
