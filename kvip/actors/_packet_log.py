"""What a pool's packet thread logs, always outside the pool's lock.

- At DEBUG, one line per DHCP packet: its type, MAC and xid, and the reply
  (type and address) or why there was none (the history's WHY_* codes). The
  thread asks `isEnabledFor(DEBUG)` once per packet: nothing else is spent on
  it when DEBUG is off.
- At INFO, the first sighting of each MAC with no reservation in the pool,
  rate-limited (`UnknownMacLog`): at most UNKNOWN_MAC_LINES lines a minute per
  pool, then one "and K more" line when the minute is over, so that a flood of
  random MACs cannot become a log storm. Every packet of such a MAC is counted
  in the pool's history all the same.

The lines carry their fields for JSON logs (`extra`: pool, mac, xid,
message_type, answer, ip, reason, count; kvip/app/_logging.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kvip.serving import Seen

log = logging.getLogger("kvip.actors._packet_thread")

UNKNOWN_MAC_LINES = 10
UNKNOWN_MAC_WINDOW = 60.0


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def log_packet(pool: str, seen: Seen) -> None:
    """The DEBUG line of one packet (call only when DEBUG is enabled)."""
    _, mac, kind, xid, outcome = seen
    fields = {
        "pool": pool,
        "mac": mac_text(mac) or None,  # None: too short to have one
        "xid": f"0x{xid.hex()}",
        "message_type": kind,
        "answer": outcome.answer,
        "ip": outcome.ip,
        "reason": outcome.why,
    }
    if outcome.answer is None:
        done = f"no answer ({outcome.why})"
    else:
        done = " ".join(filter(None, (outcome.answer, outcome.ip)))
        if outcome.why:
            done += f" ({outcome.why})"
    log.debug(
        "pool %s: %s from %s xid %s: %s",
        pool,
        kind if kind != "?" else "malformed packet",
        fields["mac"] or "?",
        fields["xid"],
        done,
        extra=fields,
    )


@dataclass(slots=True)
class UnknownMacLog:
    """Rate-limited INFO lines for first sightings of unknown MACs in one pool."""

    pool: str
    #: "DHCP", or "DHCPv6" for the DHCPv6 thread's.
    protocol: str = "DHCP"
    lines: int = UNKNOWN_MAC_LINES
    window: float = UNKNOWN_MAC_WINDOW
    _started: float | None = None
    _logged: int = 0
    _more: int = 0

    def sighted(self, macs: list[bytes], now: float) -> list[str]:
        """MACs with no reservation, heard for the first time (monotonic `now`);
        returns those logged (within the budget: the IPPool gets an Event each)."""
        told: list[str] = []
        self.tick(now)
        if self._started is None:
            self._started = now
        for mac in macs:
            if self._logged < self.lines:
                self._logged += 1
                text = mac_text(mac)
                told.append(text)
                log.info(
                    "pool %s: %s from %s, a MAC with no reservation in this pool: not "
                    "answered (its later messages are counted, not logged; "
                    "GET /debug/mac/%s shows them)",
                    self.pool,
                    self.protocol,
                    text,
                    text,
                    extra={"pool": self.pool, "mac": text},
                )
            else:
                self._more += 1
        return told

    def tick(self, now: float) -> None:
        """End the window if it is over: say how many sightings went unlogged."""
        if self._started is None or now - self._started < self.window:
            return
        if self._more:
            log.info(
                "pool %s: and %d more MACs with no reservation in this pool in the last %g s",
                self.pool,
                self._more,
                now - self._started,
                extra={"pool": self.pool, "count": self._more},
            )
        self._started = None
        self._logged = self._more = 0
