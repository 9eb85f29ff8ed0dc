"""The atheris targets' properties, run bounded under hypothesis.

`make fuzz` drives the same functions with atheris; here they run as tests,
derandomized in CI, on random bytes and on mutations of valid packets.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocol import dhcp6, encode
from tests.lab.pool_harness import mutations
from tests.lab.strategies import messages
from tests.lab.strategies6 import any_messages

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"


def load_target(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, FUZZ / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


fuzz_decode = load_target("fuzz_decode")
fuzz_roundtrip = load_target("fuzz_roundtrip")
fuzz_decode6 = load_target("fuzz_decode6")
fuzz_server6 = load_target("fuzz_server6")
CORPUS6 = sorted(p for p in (FUZZ / "corpus6").rglob("*") if p.is_file() and p.suffix != ".md")


def mutated() -> st.SearchStrategy[bytes]:
    """A valid packet with a few bytes changed, cut, inserted or duplicated."""
    return messages(max_options=8).flatmap(lambda message: mutations(encode(message)))


# Packets that open like DHCP, so random tails reach the option parsers.
dhcp_prefixed = st.binary(min_size=236, max_size=236).map(
    lambda head: bytes((1,)) + head[1:2] + bytes((6,)) + head[3:] + bytes((99, 130, 83, 99))
)


@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=600)
    | mutated()
    | st.tuples(dhcp_prefixed, st.binary(max_size=300)).map(b"".join)
)
@example(b"")
@example(bytes(240))
def test_decode_target_property(data: bytes) -> None:
    fuzz_decode.check_decode(data)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_roundtrip_target_property(data: bytes) -> None:
    fuzz_roundtrip.check_roundtrip(data)


def test_the_roundtrip_provider_without_atheris_reads_the_bytes_in_order() -> None:
    source = fuzz_roundtrip.BytesProvider(b"\x07\x01\x02\x03")
    assert source.ConsumeIntInRange(0, 9) == 7
    assert source.ConsumeBytes(2) == b"\x01\x02"
    assert source.ConsumeBool() is True
    assert source.ConsumeBytes(5) == b""


# DHCPv6: random bytes, mutations of valid messages, and tails after a valid header.
mutated6 = any_messages().flatmap(lambda message: mutations(dhcp6.encode(message)))
headed6 = st.tuples(
    st.sampled_from([b"\x01\x00\x00\x01", b"\x0c\x00" + bytes(32)]), st.binary(max_size=200)
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | mutated6 | headed6.map(b"".join))
@example(b"")
@example(b"\x0d" + bytes(33) + b"\x00\x09\x00\x04\x07\x00\x00\x01")
def test_decode6_target_property(data: bytes) -> None:
    fuzz_decode6.check_decode6(data)


# The DHCPv6 server: the same inputs, and mutations of the captured corpus.
corpus6_mutated = st.sampled_from(CORPUS6).flatmap(lambda path: mutations(path.read_bytes()))


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | mutated6 | headed6.map(b"".join) | corpus6_mutated)
@example(b"")
@example(b"\x0c" + bytes(33) + b"\x00\x09\x00\x04\x01\x00\x00\x01")
def test_server6_target_property(data: bytes) -> None:
    fuzz_server6.check_server6(data)


def test_server6_target_answers_the_captured_corpus() -> None:
    pool = fuzz_server6.Pool()
    for path in CORPUS6:
        fuzz_server6.check_server6(path.read_bytes(), pool)
    sent = [r.counters.sent for r in pool.responders]
    assert all(s["REPLY"] and s["ADVERTISE"] for s in sent), sent
    # The repeats were answered from the replay caches, and held equal to the twins'.
    assert all(pair.cached._replays and not pair.uncached._replays for pair in pool.twins)
