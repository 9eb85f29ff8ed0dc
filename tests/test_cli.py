"""The command line and logging: what an operator types and reads."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from kvip import app
from kvip.app import configure, parse_level
from kvip.cli import main


def kvip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kvip", *args], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


def test_help_lists_every_command() -> None:
    result = kvip("--help")
    assert result.returncode == 0
    for command in ("run", "pools", "vmnetcfg", "cleanup"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("run", "--help"), ["--kubeconfig", "LOGLEVEL", "--pool-selector", "--lease-name",
                             "METRICS_PORT", "--socket-netns"]),
        (("vmnetcfg", "reset", "--help"), ["NAMESPACE/NAME", "declined"]),
        (("cleanup", "--help"), ["--dry-run"]),
    ],
)  # fmt: skip
def test_subcommand_help_says_what_it_takes(args: tuple[str, ...], expected: list[str]) -> None:
    result = kvip(*args)
    assert result.returncode == 0
    for word in expected:
        assert word in result.stdout


def test_a_bad_log_level_is_a_clear_error() -> None:
    result = kvip("run", "--log-level", "CHATTY")
    assert result.returncode == 2
    assert "log level 'CHATTY' is not one of TRACE|DEBUG|INFO|WARNING|ERROR" in result.stderr


@pytest.mark.parametrize(
    "timings",
    [
        ("--lease-duration", "10", "--renew-deadline", "10"),
        ("--lease-duration", "15", "--renew-deadline", "20"),
        ("--renew-deadline", "2", "--retry-period", "2"),
        ("--retry-period", "0",),
    ],
)  # fmt: skip
def test_election_timings_that_allow_two_leaders_are_a_clear_error(
    timings: tuple[str, ...],
) -> None:
    """Checked before anything else (here, before the missing kubeconfig)."""
    result = kvip("run", "--kubeconfig", "/nonexistent/kubeconfig", *timings)
    assert result.returncode == 2
    assert "need 0 < --retry-period < --renew-deadline < --lease-duration" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_command_prints_help() -> None:
    assert main([]) == 2


def test_an_unreachable_api_server_is_reported_not_a_traceback(tmp_path: object) -> None:
    result = kvip("pools", "--kubeconfig", "/nonexistent/kubeconfig")
    assert result.returncode == 1
    assert "kvip: cannot load the Kubernetes configuration" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure("DEBUG", fmt="json")
    try:
        logging.getLogger("kvip.test").warning("pool %s: %s", "p1", "declined")
    finally:
        configure("INFO")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "kvip.test"
    assert entry["message"] == "pool p1: declined"


def test_trace_is_below_debug() -> None:
    assert parse_level("trace") < parse_level("DEBUG") < parse_level("info")


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ((), None, True),
        (("--no-vmnetcfg-metrics",), None, False),
        ((), "false", False),
        (("--vmnetcfg-metrics",), "false", True),
    ],
)
def test_the_per_nic_vmnetcfg_series_can_be_switched_off(
    monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], env: str | None, expected: bool
) -> None:
    """`kvip run` hands the switch to RunOptions (and from there to the registry)."""
    seen: list[app.RunOptions] = []

    async def run(options: app.RunOptions) -> None:
        seen.append(options)

    if env is not None:
        monkeypatch.setenv("VMNETCFG_METRICS", env)
    monkeypatch.setattr(app, "run", run)
    try:
        assert main(["run", *args]) == 0
    finally:
        configure("INFO")
    assert [options.vmnetcfg_metrics for options in seen] == [expected]
