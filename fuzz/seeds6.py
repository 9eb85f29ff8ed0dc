"""Write the synthetic DHCPv6 seed packets in fuzz/corpus6/synthetic/.

Real captures (fuzz/corpus6/ elsewhere) are the main corpus; these seeds add
what the captured clients do not send: relayed messages two relays deep with
interface id and client link-layer address, IA_TA and IA_PD, rapid commit,
NTP sub-options, DUID-EN and DUID-UUID, status codes. Rerun after changing them:

    .venv/bin/python fuzz/seeds6.py
"""

from __future__ import annotations

from ipaddress import IPv6Address
from pathlib import Path
from uuid import UUID

from protocol.dhcp6 import (
    IANA,
    IAPD,
    IATA,
    ClientId,
    ClientLinkLayerAddress,
    DnsServers,
    DomainList,
    DuidEN,
    DuidLL,
    DuidLLT,
    DuidUUID,
    ElapsedTime,
    IAAddress,
    IAPrefix,
    InterfaceId,
    Message,
    MessageType,
    NtpServer,
    NtpServerAddress,
    NtpServerFqdn,
    OptionRequest,
    Preference,
    RapidCommit,
    RelayMessage,
    RelayMessageOption,
    ServerId,
    Status,
    StatusCode,
    encode,
)

OUT = Path(__file__).resolve().parent / "corpus6" / "synthetic"
MAC = bytes.fromhex("525400000001")
SERVER = ServerId(DuidLL(1, bytes.fromhex("525400000099")))
ADDRESS = IPv6Address("2001:db8::10")
LINK_LOCAL = IPv6Address("fe80::5054:ff:fe00:1")


def seeds() -> dict[str, bytes]:
    oro = OptionRequest((23, 24, 56, 82))
    solicit = Message(
        msg_type=MessageType.SOLICIT,
        transaction_id=0x5EED01,
        options=(
            ClientId(DuidEN(32473, b"vm-1")),
            ElapsedTime(0),
            RapidCommit(),
            IANA(iaid=1),
            IATA(iaid=2),
            IAPD(iaid=3, options=(IAPrefix(prefix_length=56, prefix=IPv6Address("::")),)),
            oro,
        ),
    )
    reply = Message(
        msg_type=MessageType.REPLY,
        transaction_id=0x5EED01,
        options=(
            SERVER,
            ClientId(DuidEN(32473, b"vm-1")),
            RapidCommit(),
            IANA(
                iaid=1,
                t1=1800,
                t2=2880,
                options=(IAAddress(address=ADDRESS, preferred_lifetime=3600, valid_lifetime=7200),),
            ),
            IATA(iaid=2, options=(StatusCode(Status.NO_ADDRS_AVAIL, "no temporary addresses"),)),
            IAPD(iaid=3, options=(StatusCode(Status.NO_PREFIX_AVAIL, "no prefixes"),)),
            DnsServers((IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2"))),
            DomainList(("lab.example", "svc.lab.example")),
            NtpServer((NtpServerAddress(IPv6Address("2001:db8::1")), NtpServerFqdn("ntp.example"))),
            Preference(255),
        ),
    )
    uuid_request = Message(
        msg_type=MessageType.REQUEST,
        transaction_id=7,
        options=(
            ClientId(DuidUUID(UUID("6f1b5bd2-1f2e-4b8c-9a3e-0123456789ab"))),
            SERVER,
            IANA(iaid=1, options=(IAAddress(address=ADDRESS),)),
            ElapsedTime(100),
            oro,
        ),
    )
    client = ClientId(DuidLLT(1, 0x2F000000, MAC))
    relayed = RelayMessage(
        msg_type=MessageType.RELAY_FORW,
        hop_count=1,
        link_address=IPv6Address("::"),
        peer_address=IPv6Address("2001:db8:1::1"),
        options=(
            RelayMessageOption(
                RelayMessage(
                    msg_type=MessageType.RELAY_FORW,
                    hop_count=0,
                    link_address=IPv6Address("2001:db8:2::1"),
                    peer_address=LINK_LOCAL,
                    options=(
                        InterfaceId(b"vlan10"),
                        RelayMessageOption(
                            Message(
                                msg_type=MessageType.SOLICIT,
                                transaction_id=3,
                                options=(client, ElapsedTime(0), IANA(iaid=1), oro),
                            )
                        ),
                        ClientLinkLayerAddress(1, MAC),
                    ),
                )
            ),
        ),
    )
    simple = {
        kind.name.lower().replace("_", "-"): encode(
            Message(msg_type=kind, transaction_id=9, options=(client, SERVER, ElapsedTime(0)))
        )
        for kind in (
            MessageType.CONFIRM,
            MessageType.RENEW,
            MessageType.REBIND,
            MessageType.RELEASE,
            MessageType.DECLINE,
            MessageType.INFORMATION_REQUEST,
        )
    }
    return {
        "solicit-rapid-commit": encode(solicit),
        "reply-rapid-commit": encode(reply),
        "request-duid-uuid": encode(uuid_request),
        "relay-forw-two-relays": encode(relayed),
        **simple,
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, packet in seeds().items():
        (OUT / name).write_bytes(packet)
    print(f"wrote {len(seeds())} seeds to {OUT}")


if __name__ == "__main__":
    main()
