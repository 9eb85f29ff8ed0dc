"""The IPv6 half of a pool's configuration: lifetimes and the server DUID."""

from ipaddress import IPv6Network

from kvip.serving import PoolOptions6, pool_server_duid
from protocol.dhcp6 import Message, MessageType, ServerId, decode, encode


def test_the_server_duid_is_the_pools_own_and_the_same_every_time() -> None:
    assert pool_server_duid("net1") == pool_server_duid("net1")
    assert pool_server_duid("net1") != pool_server_duid("net2")


def test_the_server_duid_goes_through_the_codec_unchanged() -> None:
    duid = pool_server_duid("net1")
    reply = Message(msg_type=MessageType.REPLY, transaction_id=7, options=(ServerId(duid),))
    assert decode(encode(reply)).options == (ServerId(duid),)


def test_renewal_and_rebinding_follow_the_preferred_lifetime() -> None:
    options = PoolOptions6(subnet=IPv6Network("2001:db8::/64"), preferred_lifetime=1000)
    assert (options.renewal_time, options.rebinding_time) == (500, 800)
