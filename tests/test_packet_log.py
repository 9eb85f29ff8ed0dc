"""The packet thread's log lines: rate-limited unknown MACs, fields in JSON logs.

The lines as a running pool writes them are in test_dhcp_diagnostics.py; here
the rate limit's window (a minute) is driven with explicit times.
"""

from __future__ import annotations

import json
import logging
from ipaddress import IPv4Address

import pytest

from kvip.actors._packet_log import UNKNOWN_MAC_LINES, UnknownMacLog, log_packet
from kvip.actors._packet_thread import log_notice
from kvip.app._logging import JsonFormatter
from kvip.serving import Declined, Outcome, Released


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def macs(first: int, count: int) -> list[bytes]:
    return [bytes.fromhex(f"02000000{n:04x}") for n in range(first, first + count)]


def test_unknown_macs_are_logged_up_to_a_limit_a_minute_then_summed_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="kvip")
    log = UnknownMacLog("p1")
    log.sighted(macs(0, UNKNOWN_MAC_LINES + 5), now=100.0)
    assert len(caplog.records) == UNKNOWN_MAC_LINES
    assert "02:00:00:00:00:00" in messages(caplog)[0]
    log.sighted(macs(100, 2), now=130.0)  # same minute: counted only
    log.tick(159.0)
    assert len(caplog.records) == UNKNOWN_MAC_LINES
    log.tick(161.0)  # the minute is over: one line for the rest
    assert len(caplog.records) == UNKNOWN_MAC_LINES + 1
    summary = caplog.records[-1]
    assert "and 7 more MACs" in summary.getMessage()
    assert summary.__dict__["count"] == 7 and summary.__dict__["pool"] == "p1"
    log.tick(300.0)  # nothing more to say
    assert len(caplog.records) == UNKNOWN_MAC_LINES + 1
    log.sighted(macs(200, 1), now=301.0)  # a new minute logs again
    assert "02:00:00:00:00:c8" in messages(caplog)[-1]


def test_a_quiet_minute_needs_no_summary(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kvip")
    log = UnknownMacLog("p1")
    log.sighted(macs(0, 3), now=0.0)
    log.tick(61.0)
    assert len(caplog.records) == 3


def json_line(record: logging.LogRecord) -> dict[str, object]:
    entry = json.loads(JsonFormatter().format(record))
    assert isinstance(entry, dict)
    return entry


def test_json_lines_carry_the_packet_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kvip")
    mac = bytes.fromhex("525400123456")
    log_packet("p1", (1.0, mac, "REQUEST", b"\x00\x00\xca\xfe", Outcome("NAK", None, "wrong")))
    entry = json_line(caplog.records[-1])
    assert entry["message"] == "pool p1: REQUEST from 52:54:00:12:34:56 xid 0x0000cafe: NAK (wrong)"
    assert {k: entry[k] for k in ("pool", "mac", "xid", "message_type", "answer", "reason")} == {
        "pool": "p1",
        "mac": "52:54:00:12:34:56",
        "xid": "0x0000cafe",
        "message_type": "REQUEST",
        "answer": "NAK",
        "reason": "wrong",
    }
    assert "ip" not in entry  # None is left out
    assert {"time", "level", "logger"} <= entry.keys()


def test_json_lines_of_declines_and_releases_carry_pool_mac_and_ip(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="kvip")
    ip = IPv4Address("198.18.0.10")
    log_notice("p1", Declined("52:54:00:12:34:56", ip, "arp"))
    log_notice("p1", Released("52:54:00:12:34:56", ip))
    declined, released = (json_line(r) for r in caplog.records[-2:])
    for entry, kind in ((declined, "DECLINE"), (released, "RELEASE")):
        assert (entry["pool"], entry["mac"], entry["ip"], entry["message_type"]) == (
            "p1",
            "52:54:00:12:34:56",
            "198.18.0.10",
            kind,
        )
    assert declined["level"] == "WARNING"
