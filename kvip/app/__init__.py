"""Entry points and process wiring: signals, logging, probes, metrics, the webhook."""

from kvip.app import _operator as operator
from kvip.app._logging import TRACE, configure, parse_level
from kvip.app._run import RunOptions, run
from kvip.app._webhook import Webhook, WebhookOptions

__all__ = [
    "TRACE",
    "RunOptions",
    "Webhook",
    "WebhookOptions",
    "configure",
    "operator",
    "parse_level",
    "run",
]
