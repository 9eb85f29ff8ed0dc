"""Trio actors: the supervisor, one PoolActor per IPPool, watchers, status writers."""

from kvip.actors._controller import Controller
from kvip.actors._dhcp6_socket import Dhcp6Mode
from kvip.actors._dhcp_socket import open_dhcp_socket, socket_factory_in
from kvip.actors._leader import LeaderElector
from kvip.actors._messages import (
    ClaimAddress,
    ClaimAddress6,
    ClearDecline,
    HoldReplicaAddresses,
    Inspect,
    MarkDeclined,
    PoolMessage,
    PoolState,
    Reconfigure,
    ReleaseOwner,
    ReleaseVm,
    RestoreReservation,
    ServeRecorded,
    ServeReservation,
)
from kvip.actors._pool import PoolActor, PoolStopped
from kvip.actors._pool_book import MacConflict
from kvip.actors._pool_dhcp6 import Dhcp6Wire
from kvip.actors._replica_card import ReplicaCard
from kvip.actors._replicas import ReplicaDirectory, ReplicaHeartbeat

__all__ = [
    "ClaimAddress",
    "ClaimAddress6",
    "ClearDecline",
    "Controller",
    "Dhcp6Mode",
    "Dhcp6Wire",
    "HoldReplicaAddresses",
    "Inspect",
    "LeaderElector",
    "MacConflict",
    "MarkDeclined",
    "PoolActor",
    "PoolMessage",
    "PoolState",
    "PoolStopped",
    "Reconfigure",
    "ReleaseOwner",
    "ReleaseVm",
    "ReplicaCard",
    "ReplicaDirectory",
    "ReplicaHeartbeat",
    "RestoreReservation",
    "ServeRecorded",
    "ServeReservation",
    "open_dhcp_socket",
    "socket_factory_in",
]
