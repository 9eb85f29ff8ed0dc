"""Where the API server refuses an IPPool status for its size (issue 14).

Run (no root needed):

    .venv/bin/python -m bench.status_size

On a dedicated local API server (tests/lab/apiserver.py), one /16 IPPool
gets status.ipv4.allocated maps of kubevirt-ip-helper's format
("198.18.x.y": "default/vm-NNNNN [52:54:00:xx:xx:xx]", about 55 bytes of JSON
an entry) written as kvip writes them (read the object, PUT the status
subresource). First a growing map in steps of 1,000 (as a pool fills up),
printing the stored object's size and its managedFields' share; then a
bisection between the last accepted and the first refused size, to 10
entries. Prints the error the API server answers with.
"""

from __future__ import annotations

import json
import sys
from ipaddress import IPv4Address
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.lab import objects
from tests.lab.apiserver import ApiServer
from tests.lab.k8s_crds import KUBEVIRT_CRDS, KVIP_CRDS, install_crds
from tests.lab.objects import GROUP, VERSION

START = IPv4Address("198.18.0.10")
STEP = 1000
NAME = "status-size"


def allocated(count: int) -> dict[str, str]:
    return {
        str(START + i): (
            f"default/vm-{i:05d} [52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}]"
        )
        for i in range(count)
    }


def size(body: Any) -> int:
    return len(json.dumps(body, separators=(",", ":")))


def write(custom: Any, count: int) -> tuple[bool, str]:
    """(accepted, what the API server said) for a status of `count` entries."""
    body = custom.get_cluster_custom_object(GROUP, VERSION, "ippools", NAME)
    body["status"] = {"ipv4": {"allocated": allocated(count), "used": count, "available": 0}}
    try:
        stored = custom.replace_cluster_custom_object_status(GROUP, VERSION, "ippools", NAME, body)
    except ApiException as exc:
        message = json.loads(exc.body).get("message") if exc.body else exc.reason
        return False, f"refused: {exc.status} {message}"
    managed = size(stored["metadata"].get("managedFields"))
    return True, f"accepted: object {size(stored)} B, managedFields {managed} B"


def main() -> int:
    with ApiServer() as api:
        api_client = config.new_client_from_config(config_file=str(api.kubeconfig))  # type: ignore[no-untyped-call]
        install_crds(api_client, KVIP_CRDS, KUBEVIRT_CRDS)
        custom = client.CustomObjectsApi(api_client)
        pool = objects.ippool(
            NAME, "default/net", subnet="198.18.0.0/16", start=str(START), end="198.18.255.250"
        )
        custom.create_cluster_custom_object(GROUP, VERSION, "ippools", pool)
        low = 0
        count = STEP
        while count <= 65_000:
            accepted, said = write(custom, count)
            print(f"{count:>6} entries: {said}", flush=True)
            if not accepted:
                break
            low, count = count, count + STEP
        else:
            print("never refused up to 65,000 entries")
            return 1
        high = count
        while high - low > 10:
            middle = (low + high) // 2
            accepted, said = write(custom, middle)
            print(f"{middle:>6} entries: {said}", flush=True)
            low, high = (middle, high) if accepted else (low, middle)
        per_entry = size(allocated(STEP)) / STEP
        print(f"largest accepted: {low} entries; refused from {high}; {per_entry:.1f} B an entry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
