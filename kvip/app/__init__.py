"""Entry points and process wiring: signals, logging, probes, metrics, the webhook."""

from kvip.app import _operator as operator
from kvip.app._logging import TRACE, configure, parse_level
from kvip.app._run import RunOptions, default_namespace, run
from kvip.app._webhook import Webhook, WebhookOptions, own_user, service_hosts

__all__ = [
    "TRACE",
    "RunOptions",
    "Webhook",
    "WebhookOptions",
    "configure",
    "default_namespace",
    "operator",
    "own_user",
    "parse_level",
    "run",
    "service_hosts",
]
