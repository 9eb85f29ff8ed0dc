"""What one pool heard from each MAC lately, and what it did about it.

Every DHCP message a pool decodes (and a malformed one from a reserved MAC)
leaves a `Seen` in the history of its MAC: when, the message type, the xid,
and the `Outcome`: the reply sent (type and address) or why the pool stayed
silent (a `WHY_*` code). `kvip why` reads it through the debug endpoint.

Bounded: the last HISTORY_PER_MAC messages of each MAC, at most MAX_KNOWN_MACS
MACs with a reservation and MAX_UNKNOWN_MACS without one, the MAC least
recently heard on the slow path evicted first. The two are kept apart so that a
flood of random MACs cannot push the VMs' own histories out.

Recording is on the packet path, exact-repeat replays included: one `Seen` is a
plain tuple, its outcome shared with the cached answer, and a replay holds its
MAC's record, so recording a replay costs a deque append (and, when the record
was evicted meanwhile, a `revive`).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import NamedTuple

HISTORY_PER_MAC = 8
MAX_KNOWN_MACS = 2048
MAX_UNKNOWN_MACS = 512
#: New unknown MACs held for the packet thread to log (more are only counted).
MAX_FRESH = 64

# Why a pool stayed silent (Outcome.why when Outcome.answer is None).
WHY_UNKNOWN_MAC = "unknown_mac"  # no reservation for this MAC in this pool
WHY_MALFORMED = "malformed"  # the packet does not decode
WHY_NOT_A_REQUEST = "not_a_request"  # a BOOTREPLY, or no message type
WHY_TOO_MANY_HOPS = "too_many_hops"  # relayed through more than 16 hops
WHY_DRAINING = "draining"  # this replica is shutting down: no new bindings
WHY_DECLINED_ADDRESS = "declined_address"  # the reserved address was declined as in use
WHY_ANOTHER_SERVER = "another_server"  # the client chose or names another server
WHY_NO_ADDRESS = "no_requested_address"  # a REQUEST naming no address at all
WHY_DECLINED = "declined"  # a DECLINE, recorded: the address is not offered again
WHY_DECLINE_IGNORED = "decline_of_another_address"  # a DECLINE of an address not reserved
WHY_RELEASED = "released"  # a RELEASE (the address stays reserved)
WHY_NOT_HANDLED = "not_handled"  # a message type a server does not answer
WHY_CANNOT_BUILD = "cannot_build_reply"  # the reply did not encode (logged as an error)
# DHCPv6 only (RFC 8415 16): a client id missing, or a server id where none
# belongs (or none where one must be), or a CONFIRM listing no address.
WHY_INVALID = "invalid"


class Outcome(NamedTuple):
    """What a pool did with one message."""

    #: The reply's message type ("OFFER", "ACK", "NAK"), None when silent.
    answer: str | None
    #: The address the reply gives (None for a NAK or an INFORM's ACK).
    ip: str | None
    #: Why silent (a WHY_* code), or a NAK's message.
    why: str | None


def silent(why: str) -> Outcome:
    return Outcome(None, None, why)


#: (time, MAC, message type name or "?", xid as 4 bytes, outcome). A plain tuple:
#: one is made per packet, and a NamedTuple's constructor costs five times more.
Seen = tuple[float, bytes, str, bytes, Outcome]
#: What `History.of` tells of one MAC: messages heard, the last few, whether unknown.
MacSeen = tuple[int, tuple[Seen, ...], bool]


@dataclass(slots=True)
class MacRecord:
    seen: deque[Seen] = field(default_factory=lambda: deque(maxlen=HISTORY_PER_MAC))
    #: Messages heard from this MAC since it was first remembered.
    count: int = 0
    #: No longer in its table (a replay holding it revives it).
    evicted: bool = False


@dataclass(slots=True)
class History:
    known: OrderedDict[bytes, MacRecord] = field(default_factory=OrderedDict)
    unknown: OrderedDict[bytes, MacRecord] = field(default_factory=OrderedDict)
    #: Unknown MACs remembered for the first time, for the packet thread to log.
    fresh: list[bytes] = field(default_factory=list)
    max_known: int = MAX_KNOWN_MACS
    max_unknown: int = MAX_UNKNOWN_MACS

    def record(self, seen: Seen, *, reserved: bool) -> MacRecord:
        """Remember one message of the MAC seen[1]; `reserved`: the pool has a
        reservation for it (a MAC moves between the two tables with its history)."""
        mac = seen[1]
        table = self.known if reserved else self.unknown
        entry = table.get(mac)
        if entry is None:
            entry = self._add(mac, table, reserved)
        else:
            table.move_to_end(mac)
        entry.count += 1
        entry.seen.append(seen)
        return entry

    def revive(self, mac: bytes, entry: MacRecord) -> MacRecord:
        """A replay recorded its last message in an evicted `entry`: the record of
        `mac` that is current now, with that message in it."""
        current = self.known.get(mac)
        if current is None:
            self._insert(mac, self.known, entry, self.max_known)
            entry.evicted = False
            return entry
        current.count += 1
        current.seen.append(entry.seen[-1])
        return current

    def _add(self, mac: bytes, table: OrderedDict[bytes, MacRecord], reserved: bool) -> MacRecord:
        other = self.unknown if reserved else self.known
        entry = other.pop(mac, None)
        if entry is None:
            entry = MacRecord()
            if not reserved and len(self.fresh) < MAX_FRESH:
                self.fresh.append(mac)
        self._insert(mac, table, entry, self.max_known if reserved else self.max_unknown)
        return entry

    @staticmethod
    def _insert(
        mac: bytes, table: OrderedDict[bytes, MacRecord], entry: MacRecord, limit: int
    ) -> None:
        if len(table) >= limit:
            table.popitem(last=False)[1].evicted = True
        table[mac] = entry

    def of(self, mac: bytes) -> MacSeen | None:
        """(messages heard, the last few, whether unknown) for one MAC, as copies."""
        for table, unknown in ((self.known, False), (self.unknown, True)):
            entry = table.get(mac)
            if entry is not None:
                return entry.count, tuple(entry.seen), unknown
        return None

    def take_fresh(self) -> list[bytes]:
        fresh, self.fresh = self.fresh, []
        return fresh
