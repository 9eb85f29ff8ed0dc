"""The DHCP server path under random traffic and random control messages.

A PoolActor is driven without a network: packets straight into its Responder
(as the packet loop does) or through a fake socket to its packet thread (the
harness waits until the thread is back in recv, so it sees every reply, and
checks the thread sent exactly what a copy of the responder answers), interleaved with
the messages the controller sends (claim, serve, restore, release, reconfigure,
clear a decline). Whatever arrives, the server never raises, never answers a
MAC without a reservation, answers a reserved MAC with exactly its address (or
none, for a NAK or an INFORM), never hands out an address outside the range,
excluded or declined, and its allocator and MAC table agree with a plain model.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import sys
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from kvip.actors import (
    ClaimAddress,
    ClearDecline,
    Inspect,
    MacConflict,
    PoolActor,
    PoolMessage,
    Reconfigure,
    ReleaseOwner,
    ReleaseVm,
    RestoreReservation,
    ServeReservation,
)
from kvip.ipam import Allocator, IpamError, Owner
from kvip.serving import Declined, Released, Reply, mac_bytes
from protocol import Message, MessageType, Op, OptionCode, Options, encode
from tests.lab.pool_harness import (
    FakeSocketFactory,
    dhcp_requests,
    garbage,
    in_subnet,
    pool_config,
    pool_configs,
)

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"


def load_target(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, FUZZ / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


fuzz_server = load_target("fuzz_server")

VMS = ["ns/vm0", "ns/vm1", "ns/vm2"]
MACS = [f"52:54:00:00:00:{n:02x}" for n in range(1, 7)]
MAC_BYTES = [mac_bytes(mac) for mac in MACS]


def owner_of(vm: str, mac: str) -> Owner:
    return Owner(f"{vm} [{mac}]")


def check_answer(actor: PoolActor, request: bytes, *, before: dict[bytes, Any]) -> Reply | None:
    """Hand `request` to the actor's responder, as its packet loop does, and
    check the answer against the state before it and the allocator."""
    responder = actor.responder
    declined = set(responder.declined)
    reply = responder.handle(request)
    if reply is None:
        return None
    answer = fuzz_server.check_reply(
        request,
        reply,
        reservations=before,
        declined=declined,
        server_ip=actor.responder.options.server_ip,
    )
    if answer.yiaddr != IPv4Address(0):
        nic = actor.nics[answer.mac]
        assert actor.allocator.owner_of(answer.yiaddr) == nic.owner
        assert actor.allocator.is_assignable(answer.yiaddr)
    return reply


class PoolUnderFire(RuleBasedStateMachine):
    """A pool actor against a model: which MAC holds what, who is served."""

    def __init__(self) -> None:
        super().__init__()
        self.factory = FakeSocketFactory()
        self.actor = PoolActor(pool_config(), socket_factory=self.factory)
        #: mac -> (owner, address of its NIC)
        self.nics: dict[str, tuple[Owner, IPv4Address]] = {}
        #: owner -> every address it holds
        self.held: dict[Owner, set[IPv4Address]] = {}
        #: MACs the pool must answer for
        self.served: set[str] = set()

    @initialize(config=pool_configs())
    def start(self, config: Any) -> None:
        self.actor = PoolActor(config, socket_factory=self.factory)

    # -- helpers -----------------------------------------------------------------

    def holder_of(self, ip: IPv4Address) -> Owner | None:
        return next((owner for owner, ips in self.held.items() if ip in ips), None)

    def expect_failure(self, owner: Owner, ip: IPv4Address | None) -> bool:
        """Whether holding `ip` (None: any free address) for `owner` must fail."""
        if ip is None:
            return self.actor.allocator.available == 0
        holder = self.holder_of(ip)
        if holder is not None:
            return holder != owner
        return not self.actor.allocator.is_assignable(ip)

    def drop_owner(self, owner: Owner) -> None:
        self.held.pop(owner, None)
        for mac in [mac for mac, (o, _) in self.nics.items() if o == owner]:
            del self.nics[mac]
            self.served.discard(mac)

    def addresses(self) -> list[IPv4Address]:
        spec = self.actor.allocator.spec
        return sorted({ip for ips in self.held.values() for ip in ips} | {spec.start, spec.end})

    # -- the controller's messages -------------------------------------------------

    @rule(
        vm=st.sampled_from(VMS),
        mac=st.sampled_from(MACS),
        requested=st.none() | in_subnet(0, 70),
        hostname=st.none() | st.sampled_from(["vm-a", "vm-b"]),
    )
    def claim(self, vm: str, mac: str, requested: IPv4Address | None, hostname: str | None) -> None:
        owner = owner_of(vm, mac)
        previous = self.nics.get(mac)
        held = self.held.get(owner, set())
        keeps = bool(held) and (requested is None or requested in held)
        must_fail = not keeps and self.expect_failure(owner, requested)
        try:
            ip = self.actor.handle_now(ClaimAddress(owner, mac, requested, hostname))
        except MacConflict:
            assert previous is not None and previous[0] != owner
            return
        except IpamError:
            assert previous is None or previous[0] == owner
            assert must_fail
            return  # and nothing changed: the invariants check it
        assert previous is None or previous[0] == owner
        if keeps:
            assert ip == (requested or min(held))
            self.held[owner] = {ip}  # one NIC, one address: restored extras released
        else:
            assert not must_fail
            assert requested is None or ip == requested
            self.drop_owner(owner)
        self.held.setdefault(owner, set()).add(ip)
        self.nics[mac] = (owner, ip)

    @rule(mac=st.sampled_from(MACS), other=st.none() | in_subnet(0, 70))
    def serve(self, mac: str, other: IPv4Address | None) -> None:
        nic = self.nics.get(mac)
        ip = other if other is not None or nic is None else nic[1]
        ip = ip or IPv4Address("198.18.0.10")
        served = self.actor.handle_now(ServeReservation(mac, ip))
        assert served == (nic is not None and nic[1] == ip)
        if served:
            self.served.add(mac)

    @rule(vm=st.sampled_from(VMS), mac=st.sampled_from(MACS), ip=in_subnet(0, 70))
    def restore(self, vm: str, mac: str, ip: IPv4Address) -> None:
        owner = owner_of(vm, mac)
        previous = self.nics.get(mac)
        must_fail = self.expect_failure(owner, ip)
        try:
            self.actor.handle_now(RestoreReservation(owner, mac, ip, vm))
        except MacConflict:
            assert previous is not None and previous[0] != owner
            return
        except IpamError:
            assert must_fail
            return
        assert not must_fail
        self.held.setdefault(owner, set()).add(ip)
        self.nics[mac] = (owner, ip)
        self.served.add(mac)

    @rule(vm=st.sampled_from(VMS), mac=st.sampled_from(MACS))
    def release_owner(self, vm: str, mac: str) -> None:
        owner = owner_of(vm, mac)
        released = self.actor.handle_now(ReleaseOwner(owner))
        assert released == tuple(sorted(self.held.get(owner, ())))
        self.drop_owner(owner)

    @rule(vm=st.sampled_from(VMS))
    def release_vm(self, vm: str) -> None:
        owners = sorted({owner for owner, _ in self.nics.values() if owner.startswith(f"{vm} [")})
        expected = tuple(ip for owner in owners for ip in sorted(self.held.get(owner, ())))
        assert self.actor.handle_now(ReleaseVm(vm)) == expected
        for owner in owners:
            self.drop_owner(owner)

    @rule(data=st.data())
    def clear_decline(self, data: st.DataObject) -> None:
        declined = sorted(self.actor.responder.declined)
        ip = data.draw(st.sampled_from(declined) if declined else in_subnet(0, 70))
        assert self.actor.handle_now(ClearDecline(ip)) == (ip in declined)
        assert ip not in self.actor.responder.declined

    @rule(config=pool_configs())
    def reconfigure(self, config: Any) -> None:
        fresh = Allocator(config.spec)
        expected = sorted(
            (ip, owner)
            for owner, ips in self.held.items()
            for ip in ips
            if not fresh.is_assignable(ip)
        )
        evicted = trio.run(ask_running, self.actor, Reconfigure(config))
        assert list(evicted) == expected
        for ip, owner in evicted:
            self.held[owner].discard(ip)
            for mac in [mac for mac, (o, _) in self.nics.items() if o == owner]:
                del self.nics[mac]
                self.served.discard(mac)
            if not self.held[owner]:
                del self.held[owner]
        assert self.actor.config == config

    # -- traffic -------------------------------------------------------------------

    @rule(data=st.data())
    def packet(self, data: st.DataObject) -> None:
        addresses = self.addresses()
        packet = data.draw(
            dhcp_requests(macs=MAC_BYTES, addresses=addresses)
            | garbage(macs=MAC_BYTES, addresses=addresses)
        )
        self.deliver(packet)

    @rule(mac=st.sampled_from(MACS), kind=st.sampled_from([MessageType.DECLINE] * 2 + [7]))
    def decline_or_release(self, mac: str, kind: int) -> None:
        """The client of a served MAC declines or releases its address."""
        nic = self.nics.get(mac)
        ip = nic[1] if nic else IPv4Address("198.18.0.10")
        options = Options({OptionCode.MESSAGE_TYPE: kind, OptionCode.REQUESTED_IP: ip})
        request = Message(op=Op.BOOTREQUEST, xid=7, chaddr=mac_bytes(mac), options=options)
        self.deliver(encode(request))
        if kind == MessageType.DECLINE and mac in self.served:
            assert ip in self.actor.responder.declined

    def deliver(self, packet: bytes) -> None:
        responder = self.actor.responder
        check_answer(self.actor, packet, before=dict(responder.reservations))
        for notice in responder.notices:
            assert isinstance(notice, Declined | Released)
            assert notice.mac in self.served, f"a notice for {notice.mac}, not served"
            if isinstance(notice, Declined):
                assert notice.ip == self.nics[notice.mac][1]
        responder.notices.clear()

    # -- invariants ----------------------------------------------------------------

    @invariant()
    def allocator_accounts_for_every_address(self) -> None:
        allocator = self.actor.allocator
        assert allocator.used + allocator.available == allocator.capacity
        assert allocator.used == sum(len(ips) for ips in self.held.values())

    @invariant()
    def allocator_matches_the_model(self) -> None:
        pairs = sorted((ip, owner) for owner, ips in self.held.items() for ip in ips)
        assert list(self.actor.allocator.allocations()) == pairs
        for ip, _ in pairs:
            assert self.actor.allocator.is_assignable(ip)

    @invariant()
    def mac_table_matches_the_allocator(self) -> None:
        actor = self.actor
        assert {mac: (nic.owner, nic.ip) for mac, nic in actor.nics.items()} == self.nics
        for owner, ip in self.nics.values():
            assert actor.allocator.owner_of(ip) == owner
        # Every held address belongs to a NIC the pool knows: nothing is stranded.
        assert set(self.held) <= {owner for owner, _ in self.nics.values()}

    @invariant()
    def responder_serves_exactly_the_served_macs(self) -> None:
        served = {mac_bytes(mac): self.nics[mac][1] for mac in self.served}
        reservations = self.actor.responder.reservations
        assert {mac: r.ip for mac, r in reservations.items()} == served


async def ask_running(actor: PoolActor, message: PoolMessage) -> Any:
    """Start the actor (its fake socket), ask, stop: for messages that need it running."""
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        try:
            return await actor.ask(message)
        finally:
            nursery.cancel_scope.cancel()


PoolUnderFire.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestPoolUnderFire = PoolUnderFire.TestCase


# -- the atheris target's property, bounded ------------------------------------------


fuzz_inputs = (
    st.binary(max_size=700)
    | st.tuples(st.integers(0, 255), dhcp_requests(macs=MAC_BYTES, addresses=[])).map(
        lambda pair: bytes((pair[0],)) + pair[1]
    )
    | st.tuples(st.integers(0, 255), garbage(macs=fuzz_server._MACS, addresses=[])).map(
        lambda pair: bytes((pair[0],)) + pair[1]
    )
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(fuzz_inputs, min_size=1, max_size=6))
def test_server_target_property(inputs: list[bytes]) -> None:
    """A few inputs into one responder pair, as the fuzzer runs them (the pair
    is fresh per example here, so that a failure shrinks and replays)."""
    twins = fuzz_server.Twins()
    for data in inputs:
        fuzz_server.check_server(data, twins)


def test_the_server_target_answers_repeats_from_the_cache() -> None:
    """The target reuses its responder: a known client's second input is
    answered from the replay cache, and a cache that answered differently
    from the slow path fails the target."""
    twins = fuzz_server.Twins()
    discover = b"\x01" + sorted((FUZZ / "corpus" / "udhcpc").glob("*discover*"))[0].read_bytes()
    fuzz_server.check_server(discover, twins)
    assert twins.cached._replays and not twins.uncached._replays
    offers = twins.cached.counters.sent["OFFER"]
    fuzz_server.check_server(discover, twins)
    assert twins.cached.counters.sent["OFFER"] == offers + 2
    # A cache gone wrong (the B bit set where the slow path sets none) is caught.
    for key, replay in twins.cached._replays.items():
        twins.cached._replays[key] = replace(replay, answer=replay.answer._replace(flags=0x8000))
    with pytest.raises(AssertionError, match="the cache changed the answer"):
        fuzz_server.check_server(discover, twins)


def test_a_relayed_nak_carries_the_broadcast_bit() -> None:
    """Pinned from a CI fuzz crash: the target's invariant once demanded the
    request's flags back, but RFC 2131 4.3.2 has a relayed NAK set the B bit."""
    relay = IPv4Address("198.18.7.1")
    options = Options(
        {
            OptionCode.MESSAGE_TYPE: MessageType.REQUEST,
            OptionCode.REQUESTED_IP: IPv4Address("198.18.0.99"),  # not its address
        }
    )
    request = Message(
        op=Op.BOOTREQUEST, xid=9, chaddr=fuzz_server._MACS[0], giaddr=relay, options=options
    )
    data = encode(request)
    fuzz_server.check_server(data)
    reply = fuzz_server.new_responder().handle(data)
    assert reply is not None and reply.message_type == MessageType.NAK
    answer = fuzz_server.check_reply(
        data,
        reply,
        reservations=fuzz_server.new_responder().reservations,
        declined=set(),
        server_ip=fuzz_server.SERVER_IP,
    )
    assert answer.flags == fuzz_server._BROADCAST
    assert reply.address == (str(relay), 67)


def test_the_server_target_reaches_known_clients() -> None:
    """The first byte turns the rest into a request from a reserved MAC: real
    requests from the corpus then get answers, so the fuzzer explores replies."""
    responder = fuzz_server.new_responder()
    corpus = sorted((FUZZ / "corpus" / "udhcpc").glob("*discover*"))
    assert corpus
    for path in corpus:
        reply = responder.handle(fuzz_server.as_known_client(b"\x01" + path.read_bytes()))
        assert reply is not None and reply.message_type == MessageType.OFFER


# -- the actor's own loop, through a fake socket ---------------------------------------


@dataclass(frozen=True)
class ClaimAndServe:
    """A step: claim an address for a NIC, serve what the claim returned (as
    the controller does), then the NIC's client asks: DISCOVER, REQUEST for
    its address, INFORM, directly or through a relay."""

    claim: ClaimAddress
    asks: tuple[MessageType, ...]
    giaddr: IPv4Address


def steps() -> st.SearchStrategy[list[Any]]:
    def claims(
        macs: list[str], requested: st.SearchStrategy[IPv4Address | None]
    ) -> st.SearchStrategy[ClaimAddress]:
        return st.builds(
            ClaimAddress,
            st.sampled_from(VMS).flatmap(
                lambda vm: st.sampled_from([owner_of(vm, m) for m in MACS])
            ),
            st.sampled_from(macs),
            requested,
        )

    # Plain clients and served NICs share two MACs, so that many packets get answers.
    asks = st.lists(
        st.sampled_from([MessageType.DISCOVER, MessageType.REQUEST, MessageType.INFORM]),
        max_size=3,
    ).map(tuple)
    relays = st.sampled_from([IPv4Address(0), IPv4Address("198.18.9.1")])
    messages = st.one_of(
        claims(MACS, st.none() | in_subnet(0, 70)),
        st.builds(ClaimAndServe, claims(MACS[:2], st.none()), asks, relays),
        st.builds(ServeReservation, st.sampled_from(MACS), in_subnet(0, 70)),
        st.builds(ReleaseVm, st.sampled_from(VMS)),
        st.builds(ClearDecline, in_subnet(0, 70)),
        st.builds(Reconfigure, pool_configs()),
    )
    packets = (
        dhcp_requests(macs=MAC_BYTES, addresses=[])
        | garbage(macs=MAC_BYTES, addresses=[])
        | st.builds(
            client_request,
            st.sampled_from([MessageType.DISCOVER, MessageType.REQUEST, MessageType.INFORM]),
            st.sampled_from(MACS[:2]),
            st.none() | in_subnet(0, 70),
            st.sampled_from([IPv4Address(0), IPv4Address("198.18.9.1")]),
        )
    )
    return st.lists(messages | packets, min_size=1, max_size=30)


def client_request(
    kind: MessageType, mac: str, requested: IPv4Address | None, giaddr: IPv4Address
) -> bytes:
    """What a plain client sends (directly or through a relay): most get answers."""
    options: dict[int, object] = {OptionCode.MESSAGE_TYPE: kind}
    if requested is not None:
        options[OptionCode.REQUESTED_IP] = requested
    message = Message(
        op=Op.BOOTREQUEST, xid=7, chaddr=mac_bytes(mac), giaddr=giaddr, options=Options(options)
    )
    return encode(message)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=pool_configs(), script=steps())
def test_the_running_actor_answers_only_reserved_macs(config: Any, script: list[Any]) -> None:
    factory = FakeSocketFactory()
    actor = PoolActor(config, socket_factory=factory)
    trio.run(run_script, actor, factory, script)


#: Seconds the packet thread may take for one packet before the harness fails.
HANDLED_WITHIN = 30.0


async def deliver(factory: FakeSocketFactory, packet: bytes) -> list[tuple[bytes, tuple[str, int]]]:
    """Send `packet` to the running actor's socket; what its packet thread sent back."""
    sock = factory.current
    sent_before = len(sock.sent)
    sock.inject(packet)
    # The thread is no trio task (wait_all_tasks_blocked cannot see it): wait
    # until it is back in recv. The bound only turns a hang into a failure.
    assert await trio.to_thread.run_sync(sock.wait_handled, HANDLED_WITHIN)
    return sock.sent[sent_before:]


async def run_script(actor: PoolActor, factory: FakeSocketFactory, script: list[Any]) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        for step in script:
            if isinstance(step, bytes):
                if not actor.serving:
                    continue  # paused: no socket to send to
                await deliver_and_check(actor, factory, step)
            elif isinstance(step, ClaimAndServe):
                try:
                    ip = await actor.ask(step.claim)
                except IpamError:  # the state machine checks which
                    continue
                assert await actor.ask(ServeReservation(step.claim.mac, ip))
                for kind in step.asks:
                    requested = ip if kind == MessageType.REQUEST else None
                    request = client_request(kind, step.claim.mac, requested, step.giaddr)
                    if actor.serving:
                        await deliver_and_check(actor, factory, request)
            else:
                with contextlib.suppress(IpamError):
                    await actor.ask(step)
            state = await actor.ask(Inspect())
            assert state.used + state.available == actor.allocator.capacity
            assert state.serving == (not actor.config.paused)
            for mac, nic in actor.nics.items():
                assert nic.ip is not None and actor.allocator.owner_of(nic.ip) == nic.owner, mac
        nursery.cancel_scope.cancel()
    assert all(sock.closed for sock in factory.sockets)


async def deliver_and_check(actor: PoolActor, factory: FakeSocketFactory, packet: bytes) -> None:
    """The packet thread sends exactly what a copy of its responder, asked the
    same packet here, answers; and that answer is one kvip may give."""
    with actor._lock:
        twin = copy.deepcopy(actor.responder)
    reservations, declined = dict(twin.reservations), set(twin.declined)
    expected = twin.handle(packet)
    sent = await deliver(factory, packet)
    assert sent == ([] if expected is None else [(expected.payload, expected.address)])
    if expected is not None:
        fuzz_server.check_reply(
            packet,
            expected,
            reservations=reservations,
            declined=declined,
            server_ip=actor.responder.options.server_ip,
        )
    # --hypothesis-show-statistics shows how many packets got a reply.
    event(f"reply: {expected.message_type.name if expected else 'none'}")


def test_the_harness_sees_what_the_packet_thread_sends() -> None:
    """`deliver` returns the packet thread's replies: a served MAC's DISCOVER
    gets its OFFER, a DECLINE none, and the thread takes each packet in turn."""
    factory = FakeSocketFactory()
    actor = PoolActor(pool_config(), socket_factory=factory)
    owner, mac = owner_of(VMS[0], MACS[0]), MACS[0]

    def request(kind: MessageType, xid: int) -> bytes:
        options = Options({OptionCode.MESSAGE_TYPE: kind})
        return encode(Message(op=Op.BOOTREQUEST, xid=xid, chaddr=mac_bytes(mac), options=options))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(actor.run)
            ip = await actor.ask(ClaimAddress(owner, mac, None))
            assert await actor.ask(ServeReservation(mac, ip))
            for xid in range(1, 6):
                sent = await deliver(factory, request(MessageType.DISCOVER, xid))
                assert len(sent) == 1, f"saw {len(sent)} replies to DISCOVER {xid}"
                offer = fuzz_server.protocol.decode(sent[0][0])
                assert (offer.xid, offer.message_type, offer.yiaddr) == (
                    xid, MessageType.OFFER, ip,
                )  # fmt: skip
            assert await deliver(factory, request(MessageType.DECLINE, 9)) == []
            assert actor.responder.counters.received["DISCOVER"] == 5
            nursery.cancel_scope.cancel()

    trio.run(main)
