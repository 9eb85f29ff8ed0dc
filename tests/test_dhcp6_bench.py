"""bench/dhcp6_load.py works: its --quick path against kvip alone, for one
short step. No speed is asserted here (the bench checks the targets); this
proves the lab comes up with IPv6, perfdhcp -6 completes exchanges against a
dual-stack kvip pool that hands out the reserved addresses, the figures are
read, and every namespace is gone afterwards.
"""

from __future__ import annotations

import pytest

from bench.dhcp6_load import PREFIX, parse_args, run, summarize
from tests.lab.dhcpchecks import need
from tests.lab.netlab import netns_names

pytestmark = pytest.mark.netns


def test_quick_run_against_kvip_completes_exchanges_and_leaves_no_namespace(
    capsys: pytest.CaptureFixture[str],
) -> None:
    need("perfdhcp", "taskset")
    args = parse_args(
        ["--quick", "--servers", "kvip", "--rates", "200", "--warmup", "0", "--retries", "0",
         "--reservations", "50"]
    )  # fmt: skip
    results = run(args)
    assert not [name for name in netns_names() if name.startswith(PREFIX)]
    out = capsys.readouterr().out
    assert "kvip: " in out and "leases checked, each the reserved address" in out
    [step] = results["kvip"]
    assert step.rate == 200 and step.seconds == 3.0
    assert step.report.completed > 0
    assert step.report.discover.sent >= step.report.completed
    assert step.report.delays, "perfdhcp -x t printed no timestamps"
    assert step.cpu_seconds > 0
    counters = out[out.index("kvip counters:") :]
    assert '"REPLY"' in counters and '"ADVERTISE"' in counters
    verdicts = summarize(results, max_drops=args.max_drops, top_rate=200)
    assert verdicts == []  # no peer ran: nothing to compare against
