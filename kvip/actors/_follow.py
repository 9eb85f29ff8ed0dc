"""Serving without the Lease: a replica that does not lead serves exactly what
the vmnetcfgs record, and claims, writes and reports nothing.

Every replica runs the controller; the Lease decides only who writes. A
follower's pools are rebuilt from the vmnetcfgs like the leader's, and each
change the watches bring (a new reservation written by the leader, a deleted
VM) is mirrored into the pools here: the durability rule holds on every
replica, since a follower answers only for what a vmnetcfg records.
"""

from __future__ import annotations

import logging
from ipaddress import AddressValueError, IPv4Address

from kvip.actors._messages import RestoreReservation, ServeRecorded
from kvip.actors._plan import first_per_nic
from kvip.actors._reconcile import VmReconciler, owner_of
from kvip.ipam import IpamError
from kvip.k8s._bodies import vmnetcfg_records

log = logging.getLogger(__name__)


class RecordFollower(VmReconciler):
    """The Controller's following half (a mixin, like VmReconciler)."""

    __slots__ = ()

    def recorded(self, key: str) -> dict[str, list[RestoreReservation]]:
        """The VM's recorded reservations by network; none once the VM is gone
        (its addresses are released at once, whatever its vmnetcfg still says)."""
        vm, cfg = self.vms.get(key), self.cfgs.get(key)
        if vm is None or cfg is None:
            return {}
        hostname = key.rpartition("/")[2]
        recorded: dict[str, list[RestoreReservation]] = {}
        for record in first_per_nic(key, vmnetcfg_records(cfg)):
            if not record.ip:
                continue
            try:
                ip = IPv4Address(record.ip)
            except AddressValueError:
                continue  # the leader reports it in the vmnetcfg status
            reservation = RestoreReservation(owner_of(key, record.mac), record.mac, ip, hostname)
            recorded.setdefault(record.network, []).append(reservation)
        return recorded

    async def follow_records(self, key: str) -> None:
        """Make every running pool hold and serve the VM's records, and nothing
        else of the VM. A record that cannot be held (its address is still
        another VM's here: the watches may deliver the leader's writes in
        another order than it made them) fails the reconcile, which is retried."""
        recorded = self.recorded(key)
        problems: list[tuple[RestoreReservation, IpamError]] = []
        for pool in self.supervisor.running():
            records = tuple(recorded.get(pool.config.network, ()))
            released, failed = await pool.ask(ServeRecorded(key, records))
            for ip in released:
                log.info("VM %s: not serving %s in IPPool %s any more: no longer recorded",
                         key, ip, pool.name)  # fmt: skip
            for record, error in failed:
                log.warning("VM %s: cannot serve %s for %s in IPPool %s yet: %s", key,
                            record.ip, record.mac, pool.name, error)  # fmt: skip
            problems.extend(failed)
        if problems:
            raise problems[0][1]
