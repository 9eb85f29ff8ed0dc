"""Telling operators about bad input without a log storm.

A problem with a VM's NIC (no MAC, no IPPool for its network) is logged and
recorded as an Event once while it lasts (VmState.told); across all VMs, at
most `per_minute` such lines are written a minute, and the rest are counted
in one line when the minute is over, so a flood of bad objects cannot turn
the log into noise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Diagnostics:
    per_minute: int = 30
    clock: Callable[[], float] = time.monotonic
    #: Things said once for the whole life of the process.
    said: set[str] = field(default_factory=set)
    _window: float = field(default=-60.0, init=False)
    _written: int = field(default=0, init=False)
    _held_back: int = field(default=0, init=False)

    def warn(self, message: str, *args: object) -> None:
        """Log a warning, unless this minute's budget is spent (then it is counted)."""
        now = self.clock()
        if now - self._window >= 60.0:
            if self._held_back:
                log.warning(
                    "%d more problems with VM NICs in the last minute were not logged "
                    "(see the VMs' Events and vmnetcfg statuses)",
                    self._held_back,
                )
            self._window, self._written, self._held_back = now, 0, 0
        if self._written < self.per_minute:
            self._written += 1
            log.warning(message, *args)
        else:
            self._held_back += 1

    def once(self, key: str, message: str, *args: object) -> None:
        """Log an INFO line the first time `key` comes up."""
        if key not in self.said:
            self.said.add(key)
            log.info(message, *args)
