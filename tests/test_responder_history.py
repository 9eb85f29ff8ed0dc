"""The responder's per-MAC history: what each MAC sent, what it got or why not.

Socket-free; the packet path through a pool's real socket is in
test_dhcp_diagnostics.py.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from kvip.serving import PoolOptions, Reservation, Responder, mac_bytes
from kvip.serving._history import HISTORY_PER_MAC, History, Seen, silent
from protocol import Message, MessageType, Op, OptionCode, Options, encode

SERVER = IPv4Address("198.18.0.1")
OTHER = IPv4Address("198.18.0.2")
MAC = "52:54:00:00:00:01"
IP = IPv4Address("198.18.1.1")
OPTIONS = PoolOptions(server_ip=SERVER, subnet=IPv4Network("198.18.0.0/16"), lease_time=600)


def packet(kind: MessageType, mac: str = MAC, *, xid: int = 1, **options: object) -> bytes:
    opts: dict[int, object] = {OptionCode.MESSAGE_TYPE: kind}
    for name, value in options.items():
        opts[OptionCode[name.upper()]] = value
    return encode(Message(op=Op.BOOTREQUEST, xid=xid, chaddr=mac_bytes(mac), options=Options(opts)))


def responder(*, cache: bool = True) -> Responder:
    r = Responder(OPTIONS, cache=cache, clock=iter(range(1000, 10**6)).__next__)
    r.set_reservation(MAC, Reservation(IP, "vm1"))
    return r


def history(r: Responder, mac: str = MAC) -> list[tuple[str, int, str | None, str | None, str]]:
    """(type, xid, answer, ip, why) of each remembered message."""
    found = r.history.of(mac_bytes(mac))
    assert found is not None
    _, seen, _ = found
    return [
        (kind, int.from_bytes(xid, "big"), out.answer, out.ip, out.why or "")
        for _, _, kind, xid, out in seen
    ]


def test_answers_and_silences_are_recorded_with_type_xid_and_reason() -> None:
    r = responder()
    r.handle(packet(MessageType.DISCOVER, xid=1))
    r.handle(packet(MessageType.DISCOVER, xid=2))  # replayed without decoding
    r.handle(packet(MessageType.REQUEST, xid=3, requested_ip=IP, server_id=OTHER))
    r.handle(packet(MessageType.REQUEST, xid=4, requested_ip=IPv4Address("198.18.1.9")))
    r.handle(packet(MessageType.REQUEST, xid=5))
    r.handle(packet(MessageType.DECLINE, xid=6, requested_ip=IP))
    r.handle(packet(MessageType.DISCOVER, xid=7))
    assert history(r) == [
        ("DISCOVER", 1, "OFFER", str(IP), ""),
        ("DISCOVER", 2, "OFFER", str(IP), ""),
        ("REQUEST", 3, None, None, "another_server"),
        ("REQUEST", 4, "NAK", None, "198.18.1.9 is not the address reserved for this client"),
        ("REQUEST", 5, None, None, "no_requested_address"),
        ("DECLINE", 6, None, str(IP), "declined"),
        ("DISCOVER", 7, None, None, "declined_address"),
    ]
    found = r.history.of(mac_bytes(MAC))
    assert found is not None and found[0] == 7 and not found[2]
    assert [seen[0] for seen in found[1]] == list(range(1000, 1007))  # the responder's clock


def test_release_draining_and_malformed_from_a_reserved_mac() -> None:
    r = responder()
    r.handle(packet(MessageType.RELEASE, xid=1, server_id=SERVER))
    broken = bytearray(packet(MessageType.DISCOVER, xid=2))
    broken[236:240] = b"\x00\x00\x00\x00"  # no magic cookie
    r.handle(bytes(broken))
    r.drain()
    r.handle(packet(MessageType.DISCOVER, xid=3))
    rows = history(r)
    assert rows[0] == ("RELEASE", 1, None, str(IP), "released")
    assert rows[1][:4] == ("?", 2, None, None) and rows[1][4].startswith("malformed: ")
    assert rows[2] == ("DISCOVER", 3, None, None, "draining")
    assert r.last is not None and r.last[4] == silent("draining")


def test_an_unknown_mac_is_counted_once_fresh_and_kept_apart() -> None:
    r = responder()
    stranger = "52:54:00:00:00:99"
    for xid in range(1, 4):
        assert r.handle(packet(MessageType.DISCOVER, stranger, xid=xid)) is None
    found = r.history.of(mac_bytes(stranger))
    assert found is not None
    count, seen, unknown = found
    assert (count, len(seen), unknown) == (3, 3, True)
    assert {s[4].why for s in seen} == {"unknown_mac"}
    assert r.history.take_fresh() == [mac_bytes(stranger)]  # its first sighting only
    assert r.history.take_fresh() == []
    # Reserved later: the MAC keeps its history and is known from then on.
    r.set_reservation(stranger, Reservation(IPv4Address("198.18.1.99")))
    r.handle(packet(MessageType.DISCOVER, stranger, xid=4))
    found = r.history.of(mac_bytes(stranger))
    assert found is not None and found[0] == 4 and not found[2]
    assert not r.history.unknown


def test_the_history_is_bounded_per_mac_and_a_flood_leaves_known_macs_alone() -> None:
    r = responder()
    r.history.max_unknown = 50
    for xid in range(3 * HISTORY_PER_MAC):
        r.handle(packet(MessageType.DISCOVER, xid=xid))
    for n in range(1000):
        r.handle(packet(MessageType.DISCOVER, f"02:00:00:00:{n >> 8:02x}:{n & 255:02x}"))
    assert len(r.history.unknown) == 50
    # The oldest unknown MACs went first.
    assert r.history.of(mac_bytes("02:00:00:00:03:e7")) is not None
    assert r.history.of(mac_bytes("02:00:00:00:00:00")) is None
    found = r.history.of(mac_bytes(MAC))
    assert found is not None and found[0] == 3 * HISTORY_PER_MAC
    assert [int.from_bytes(s[3], "big") for s in found[1]] == list(
        range(2 * HISTORY_PER_MAC, 3 * HISTORY_PER_MAC)
    )


def test_a_replay_whose_record_was_evicted_brings_it_back() -> None:
    r = responder()
    r.history.max_known = 2
    macs = ["52:54:00:00:01:01", "52:54:00:00:01:02"]
    for n, mac in enumerate(macs):
        r.set_reservation(mac, Reservation(IPv4Address(f"198.18.2.{n + 1}")))
    assert r.handle(packet(MessageType.DISCOVER, xid=1)) is not None
    for mac in macs:  # two other reserved MACs push MAC out
        r.handle(packet(MessageType.DISCOVER, mac))
    assert r.history.of(mac_bytes(MAC)) is None
    assert r.handle(packet(MessageType.DISCOVER, xid=2)) is not None  # a replay
    assert history(r) == [
        ("DISCOVER", 1, "OFFER", str(IP), ""),
        ("DISCOVER", 2, "OFFER", str(IP), ""),
    ]
    assert len(r.history.known) == 2


def test_revive_prefers_a_newer_record_of_the_same_mac() -> None:
    h = History(max_known=1)
    first: Seen = (1.0, b"a" * 6, "DISCOVER", b"\0\0\0\1", silent("x"))
    old = h.record(first, reserved=True)
    h.record((2.0, b"b" * 6, "DISCOVER", b"\0\0\0\2", silent("x")), reserved=True)
    assert old.evicted
    newer = h.record((3.0, b"a" * 6, "DISCOVER", b"\0\0\0\3", silent("x")), reserved=True)
    old.seen.append((4.0, b"a" * 6, "DISCOVER", b"\0\0\0\4", silent("x")))
    assert h.revive(b"a" * 6, old) is newer
    assert [s[0] for s in newer.seen] == [3.0, 4.0]
    assert newer.count == 2
