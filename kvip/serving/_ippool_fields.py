"""The rules for one IPPool field at a time: the same as deploy/crds.yaml's schema.

The API server checks these before kvip sees an object, and kvip checks them
again, so that a parser and a schema cannot drift apart unnoticed (a test
sends generated IPPools to both, another compares the patterns). Rules that
span fields (the range inside the subnet, ...) are `PoolSpec`'s.

Patterns are matched whole (`re.fullmatch`), as Go's `^...$` is: Python's `$`
alone would also match before a trailing newline.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

#: Dotted quad, no leading zeros (Go's net.ParseIP refuses them too).
IPV4 = (
    r"((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
)
IPV4_CIDR = IPV4 + r"/([0-9]|[12][0-9]|3[0-2])"
#: RFC 1123 labels; the last label has a letter, so 1.2.3.4 is not a name.
DNS_NAME = (
    r"([a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?\.)*"
    r"([a-zA-Z0-9][-a-zA-Z0-9]*)?[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?\.?"
)
DNS_NAME_MAX = 253
NTP_SERVER = f"({IPV4}|{DNS_NAME})"
#: A Multus network: <namespace>/<name> or <name>.
NETWORK_NAME = r"([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/)?[a-z0-9]([-.a-z0-9]*[a-z0-9])?"
NETWORK_NAME_MAX = 317
INTERFACE = r"[a-zA-Z0-9_.-]{1,15}"

_H = "[0-9a-fA-F]{1,4}"
#: RFC 4291 2.2 text forms: eight groups of 1-4 hex digits, or fewer with one
#: "::". Not the forms with a dotted quad at the end, nor a zone ("%eth0"):
#: neither names an address a pool hands out or a client is told.
IPV6 = (
    f"(({_H}:){{7}}{_H}"
    f"|({_H}:){{1,7}}:"
    f"|({_H}:){{1,6}}:{_H}"
    f"|({_H}:){{1,5}}(:{_H}){{1,2}}"
    f"|({_H}:){{1,4}}(:{_H}){{1,3}}"
    f"|({_H}:){{1,3}}(:{_H}){{1,4}}"
    f"|({_H}:){{1,2}}(:{_H}){{1,5}}"
    f"|{_H}:(:{_H}){{1,6}}"
    f"|:((:{_H}){{1,7}}|:))"
)
#: An IPv6 network of /64 or longer: DHCPv6 hands out addresses from at most a
#: /64 (a longer prefix is the schema's to refuse, being about one field).
IPV6_CIDR = IPV6 + r"/(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-8])"
NTP_SERVER6 = f"({IPV6}|{DNS_NAME})"

_IPV4 = re.compile(IPV4)
_IPV4_CIDR = re.compile(IPV4_CIDR)
_IPV6 = re.compile(IPV6)
_IPV6_CIDR = re.compile(IPV6_CIDR)


def _shown(value: object) -> str:
    return "null" if value is None else repr(value)


class Fields:
    """Reads fields of one IPPool body and collects every problem, named by path.

    Each reader returns the value, or None when the field is absent or wrong
    (the problem is then in `problems`, except for an absent optional field).
    A null counts as absent: the API server prunes it (no field is nullable).
    """

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, path: str, text: str) -> None:
        self.problems.append(f"{path} {text}")

    def _get(self, parent: Mapping[str, Any], key: str, path: str, *, required: bool) -> Any:
        value = parent.get(key)
        if value is None and required:
            self.problem(path, "is missing")
        return value

    def _typed(self, value: Any, kind: type | tuple[type, ...], path: str, what: str) -> bool:
        # bool is an int to Python, not to JSON.
        if isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool):
            return True
        self.problem(path, f"must be {what}, not {_shown(value)}")
        return False

    def mapping(
        self, parent: Mapping[str, Any], key: str, path: str, *, required: bool = False
    ) -> Mapping[str, Any] | None:
        value = self._get(parent, key, path, required=required)
        if value is None or not self._typed(value, Mapping, path, "an object"):
            return None
        return value  # type: ignore[no-any-return]

    def items(self, parent: Mapping[str, Any], key: str, path: str) -> list[tuple[str, Any]]:
        """An optional list's (path, item) pairs; none when absent or not a list."""
        value = self._get(parent, key, path, required=False)
        if value is None or not self._typed(value, list, path, "a list"):
            return []
        return [(f"{path}[{index}]", item) for index, item in enumerate(value)]

    def text(
        self,
        value: Any,
        path: str,
        *,
        pattern: str,
        what: str,
        max_length: int | None = None,
    ) -> str | None:
        if not self._typed(value, str, path, "text"):
            return None
        if max_length is not None and len(value) > max_length:
            self.problem(path, f"is longer than {max_length} characters")
            return None
        if re.fullmatch(pattern, value) is None:
            self.problem(path, f"{value!r} is not {what}")
            return None
        return value  # type: ignore[no-any-return]

    def field_text(
        self,
        parent: Mapping[str, Any],
        key: str,
        path: str,
        *,
        required: bool = False,
        pattern: str,
        what: str,
        max_length: int | None = None,
    ) -> str | None:
        value = self._get(parent, key, path, required=required)
        if value is None:
            return None
        return self.text(value, path, pattern=pattern, what=what, max_length=max_length)

    def address(self, value: Any, path: str) -> IPv4Address | None:
        if not self._typed(value, str, path, "an IPv4 address as text"):
            return None
        if _IPV4.fullmatch(value) is None:
            self.problem(path, f"{value!r} is not an IPv4 address such as 172.16.0.2")
            return None
        return IPv4Address(value)

    def field_address(
        self, parent: Mapping[str, Any], key: str, path: str, *, required: bool = False
    ) -> IPv4Address | None:
        value = self._get(parent, key, path, required=required)
        return None if value is None else self.address(value, path)

    def network(self, value: Any, path: str) -> IPv4Network | None:
        """A network in CIDR form; host bits are allowed and dropped.

        `172.16.0.2/16`, the form of `ip addr add`, means 172.16.0.0/16
        without ambiguity, and refusing it would stop a pool that an operator
        considers correct.
        """
        if not self._typed(value, str, path, "an IPv4 network as text"):
            return None
        if _IPV4_CIDR.fullmatch(value) is None:
            self.problem(path, f"{value!r} is not an IPv4 network such as 172.16.0.0/16")
            return None
        return IPv4Network(value, strict=False)

    def field_network(
        self, parent: Mapping[str, Any], key: str, path: str, *, required: bool = False
    ) -> IPv4Network | None:
        value = self._get(parent, key, path, required=required)
        return None if value is None else self.network(value, path)

    def integer(
        self, parent: Mapping[str, Any], key: str, path: str, *, low: int, high: int
    ) -> int | None:
        value = self._get(parent, key, path, required=False)
        # JSON has one kind of number: the API server takes 300.0 as 300.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if value is None or not self._typed(value, int, path, "a whole number"):
            return None
        if not low <= value <= high:
            self.problem(path, f"{value} is outside {low}..{high}")
            return None
        return value  # type: ignore[no-any-return]

    def boolean(self, parent: Mapping[str, Any], key: str, path: str) -> bool | None:
        value = self._get(parent, key, path, required=False)
        if value is None or not self._typed(value, bool, path, "true or false"):
            return None
        return value  # type: ignore[no-any-return]

    def address6(self, value: Any, path: str) -> IPv6Address | None:
        if not self._typed(value, str, path, "an IPv6 address as text"):
            return None
        if _IPV6.fullmatch(value) is None:
            self.problem(path, f"{value!r} is not an IPv6 address such as 2001:db8::10")
            return None
        return IPv6Address(value)

    def field_address6(
        self, parent: Mapping[str, Any], key: str, path: str, *, required: bool = False
    ) -> IPv6Address | None:
        value = self._get(parent, key, path, required=required)
        return None if value is None else self.address6(value, path)

    def network6(self, value: Any, path: str) -> IPv6Network | None:
        """An IPv6 network of /64 or longer; host bits are dropped, as in `network`."""
        if not self._typed(value, str, path, "an IPv6 network as text"):
            return None
        if _IPV6_CIDR.fullmatch(value) is None:
            self.problem(
                path, f"{value!r} is not an IPv6 network of /64 or longer such as 2001:db8::/64"
            )
            return None
        return IPv6Network(value, strict=False)

    def field_network6(
        self, parent: Mapping[str, Any], key: str, path: str, *, required: bool = False
    ) -> IPv6Network | None:
        value = self._get(parent, key, path, required=required)
        return None if value is None else self.network6(value, path)
