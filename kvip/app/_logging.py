"""Logging as kubevirt-ip-helper users know it: LOGLEVEL=INFO|DEBUG|TRACE."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

#: Below DEBUG: also every API request (DEBUG already logs every DHCP packet).
TRACE = 5
LEVELS = {"TRACE": TRACE, "DEBUG": logging.DEBUG, "INFO": logging.INFO,
          "WARNING": logging.WARNING, "ERROR": logging.ERROR}  # fmt: skip


#: Fields a log call may pass in `extra` that JSON lines carry as top-level keys:
#: the pool, VM (namespace/name), MAC, address, network, DHCP message type and
#: xid, the reply sent or the reason for none, a count.
FIELDS = ("pool", "vm", "mac", "ip", "network", "message_type", "xid", "answer", "reason",
          "count")  # fmt: skip


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors: time, level, logger,
    message, and each of FIELDS the call gave (`extra={...}`)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        for key in FIELDS:
            value = fields.get(key)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def parse_level(text: str) -> int:
    try:
        return LEVELS[text.strip().upper()]
    except KeyError:
        choices = "|".join(LEVELS)
        raise ValueError(f"log level {text!r} is not one of {choices}") from None


def configure(level: str = "INFO", *, fmt: str = "text") -> None:
    logging.addLevelName(TRACE, "TRACE")
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    numeric = parse_level(level)
    root.setLevel(numeric)
    # The kubernetes client and urllib3 log every request at DEBUG: only at TRACE.
    noisy = logging.WARNING if numeric > TRACE else logging.DEBUG
    for name in ("kubernetes", "urllib3"):
        logging.getLogger(name).setLevel(noisy)
