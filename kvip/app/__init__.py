"""Entry points and process wiring: signals, logging, probes, metrics."""

from kvip.app import _operator as operator
from kvip.app._logging import TRACE, configure, parse_level
from kvip.app._run import RunOptions, run

__all__ = ["TRACE", "RunOptions", "configure", "operator", "parse_level", "run"]
