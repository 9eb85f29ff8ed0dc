"""The `kvip` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from kvip import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kvip",
        description=(
            "Static DHCP service and IP address manager for KubeVirt virtual machines "
            "on Multus bridge networks."
        ),
    )
    parser.add_argument("--version", action="version", version=f"kvip {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0
