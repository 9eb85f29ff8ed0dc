"""The only code that talks to the Kubernetes API (official `kubernetes` client)."""

from kvip.k8s._client import Body, Kube
from kvip.k8s._errors import (
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubeError,
    NotFound,
    Unauthorized,
    Unavailable,
)
from kvip.k8s._errors import translate as translate_error
from kvip.k8s._health import ApiHealth
from kvip.k8s._lease import Leases
from kvip.k8s._resources import (
    ALLOCATED_LIST_MAX_ANNOTATION,
    FINALIZER,
    GROUP,
    HARVESTER_MAC_ANNOTATION,
    IPPOOLS,
    RESET_ANNOTATION,
    STATIC_IP_ANNOTATION,
    VERSION,
    VIRTUAL_MACHINES,
    VMNETCFGS,
    Resource,
)
from kvip.k8s._watch import Changed, Deleted, Snapshot, Watcher, WatchMessage
from kvip.k8s._webhooks import WebhookConfiguration

__all__ = [
    "ALLOCATED_LIST_MAX_ANNOTATION",
    "FINALIZER",
    "GROUP",
    "HARVESTER_MAC_ANNOTATION",
    "IPPOOLS",
    "RESET_ANNOTATION",
    "STATIC_IP_ANNOTATION",
    "VERSION",
    "VIRTUAL_MACHINES",
    "VMNETCFGS",
    "ApiHealth",
    "Body",
    "Changed",
    "Conflict",
    "Deleted",
    "Forbidden",
    "Gone",
    "Invalid",
    "Kube",
    "KubeError",
    "Leases",
    "NotFound",
    "Resource",
    "Snapshot",
    "Unauthorized",
    "Unavailable",
    "WatchMessage",
    "Watcher",
    "WebhookConfiguration",
    "translate_error",
]
