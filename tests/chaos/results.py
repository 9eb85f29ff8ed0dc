"""What chaos scenarios came to: one scenario's `Result`, and the `Summary`
over many (`make chaos` prints it, the README quotes it)."""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

#: Fault kinds and their weights. "compact" compacts etcd, then restarts the API
#: server: kvip's watches resume from a compacted resourceVersion and get 410 Gone.
FAULTS = {"kill": 3, "apiserver-restart": 1, "compact": 1.5, "status-writer": 3}


@dataclass
class Result:
    seed: int
    operations: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    kvip_logs: list[str] = field(default_factory=list)
    dhcp_checks: int = 0

    def relists(self) -> int:
        """Watches kvip restarted after a 410 Gone (etcd compaction)."""
        return sum(text.count("(410 Gone); listing again") for text in self.kvip_logs)

    def save(self, replay: str) -> Path:
        """The report with kvip's complete logs, in a file (printed reports are cut)."""
        folder = Path(tempfile.gettempdir()) / "kvip-chaos"
        folder.mkdir(exist_ok=True)
        path = folder / f"seed-{self.seed}-{int(time.time())}.txt"
        logs = "\n".join(f"=== kvip process log\n{text}" for text in self.kvip_logs)
        path.write_text(self.report(replay) + "\n\n" + logs)
        return path

    def report(self, replay: str) -> str:
        lines = [f"chaos seed {self.seed}: {len(self.violations)} violation(s)"]
        lines += [f"  ! {v}" for v in self.violations]
        lines += [f"replay: {replay}", "operations:"]
        lines += [f"  {entry}" for entry in self.log]
        tail = "\n".join("\n".join(text.splitlines()[-60:]) for text in self.kvip_logs[-2:])
        lines += ["kvip log (last lines of the last two processes):", tail]
        return "\n".join(lines)


@dataclass
class Summary:
    """Counts over many scenarios, for `make chaos` and the README's figures."""

    scenarios: int = 0
    operations: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    violations: int = 0
    relists: int = 0
    dhcp_checks: int = 0
    failed: list[Result] = field(default_factory=list)

    def add(self, result: Result) -> None:
        self.scenarios += 1
        self.operations += result.operations
        self.faults.update(result.faults)
        self.violations += len(result.violations)
        self.relists += result.relists()
        self.dhcp_checks += result.dhcp_checks
        if result.violations:
            self.failed.append(result)

    def render(self) -> str:
        faults = ", ".join(f"{kind} {self.faults[kind]}" for kind in FAULTS)
        return (
            f"scenarios: {self.scenarios}\n"
            f"operations: {self.operations}\n"
            f"faults: {sum(self.faults.values())} ({faults})\n"
            f"watch relists after 410 Gone: {self.relists}\n"
            f"DHCP leases checked: {self.dhcp_checks}\n"
            f"invariant violations: {self.violations} "
            f"in {len(self.failed)} scenario(s)"
            + "".join(f"\n  seed {r.seed}: {r.violations[0]}" for r in self.failed)
        )
