"""The chaos scenarios' second writer of statuses (the `status-writer` fault)."""

from __future__ import annotations

import random
import threading
from typing import Any

from tests.chaos.model import World
from tests.chaos.rig import Rig, new_custom
from tests.lab.objects import CFGS, GROUP, VERSION

MERGE = "application/merge-patch+json"


class StatusWriter(threading.Thread):
    """A second writer: merge-patches bogus entries into vmnetcfg and IPPool
    statuses while kvip works, so kvip's status writes meet 409 Conflicts and
    must repair what the intruder wrote."""

    def __init__(self, rig: Rig, world: World, seed: int) -> None:
        super().__init__(name="chaos-status-writer", daemon=True)
        self.custom = new_custom(rig.api)
        self.world = world
        self.names = list(world.vms)
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.writes = 0

    def run(self) -> None:
        while not self.stop.wait(self.rng.uniform(0.01, 0.08)):
            try:
                self._write_once()
                self.writes += 1
            except Exception:  # the API server may be away or the object gone: keep going
                pass

    def _write_once(self) -> None:
        world, rng = self.world, self.rng
        ghost = f"02:00:00:{rng.randrange(256):02x}:{rng.randrange(256):02x}:00"
        if self.names and rng.random() < 0.5:
            name = rng.choice(self.names)
            network = world.network_key(rng.choice(list(world.pools)))
            body: dict[str, Any] = {"status": {"networkconfig": [
                {"networkname": network, "macaddress": ghost, "status": "OK", "message": "ghost"}
            ]}}  # fmt: skip
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, world.namespace, CFGS, name, body, _content_type=MERGE
            )
        else:
            pool = rng.choice(list(world.pools.values()))
            ip = str(pool.address(rng.randint(pool.start, pool.end)))
            body = {"status": {"ipv4": {
                "allocated": {ip: f"{world.namespace}/ghost [{ghost}]"}, "used": 999
            }}}  # fmt: skip
            if pool.v6 is not None and rng.random() < 0.5:
                ip6 = str(pool.v6.address(rng.randint(pool.v6.start, pool.v6.end)))
                body = {"status": {"ipv6": {
                    "allocated": {ip6: f"{world.namespace}/ghost [{ghost}]"}, "used": "999"
                }}}  # fmt: skip
            self.custom.patch_cluster_custom_object_status(
                GROUP, VERSION, "ippools", pool.name, body, _content_type=MERGE
            )
