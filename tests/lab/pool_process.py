"""kvip's pool actor as a process of its own (``python -m bench.kvip_server``) in
a lab's server namespace, with or without CAP_NET_RAW.

Without it the process runs as root under ``setpriv`` with CAP_NET_RAW out of
its bounding and inheritable sets: on exec its permitted and effective sets
lose it, as kvip's pod has it nowhere, while it keeps the rest (it still binds
port 547 as root; the pod does so by a sysctl, tests/test_deploy.py). What
the process logs (WARNING and up: it configures no logging) lands in
``log()``; its counters come back from ``stop()``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.lab.netlab import Lab, LabError, run_in, stop_process
from tests.lab.poolrig import Reserved

__all__ = ["CAP_NET_RAW_BIT", "PoolProcess", "pool_process"]

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0
CAP_NET_RAW_BIT = 1 << 13


class PoolProcess:
    def __init__(self, proc: subprocess.Popen[bytes], workdir: Path) -> None:
        self.proc = proc
        self.workdir = workdir
        self._counters: dict[str, Any] | None = None
        self._final_log: str | None = None

    def log(self) -> str:
        """What it logged so far (all of it once stopped, also after the block)."""
        if self._final_log is not None:
            return self._final_log
        return (self.workdir / "stderr").read_text(errors="replace")

    def stdout(self) -> str:
        return (self.workdir / "stdout").read_text(errors="replace")

    def effective_capabilities(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
        raise LabError(f"no CapEff for pid {self.proc.pid}")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise LabError(f"kvip exited with {self.proc.returncode}:\n{self.log()[-3000:]}")

    def wait_log(self, text: str, *, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            self.check_alive()
            if time.monotonic() > deadline:
                raise LabError(f"kvip never logged {text!r}:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The process stopped (SIGSTOP) for the block: requests queue, then are answered."""
        self.proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> dict[str, Any]:
        """SIGTERM; the counters it printed on the way out (inside the block:
        its files go with it)."""
        if self._counters is None:
            stop_process(self.proc, grace=5)
            self._final_log = self.log()
            lines = self.stdout().strip().splitlines()
            if not lines or not lines[-1].startswith("{"):
                raise LabError(f"kvip printed no counters:\n{self.log()[-3000:]}")
            self._counters = json.loads(lines[-1])
        return self._counters


@contextlib.contextmanager
def pool_process(
    lab: Lab, body: Mapping[str, Any], reservations: Sequence[Reserved], *, net_raw: bool
) -> Iterator[PoolProcess]:
    """The pool ``body`` (an IPPool object) holding ``reservations``, served by
    its own process until the block ends; returns once port 547 is bound."""
    argv = [sys.executable, "-m", "bench.kvip_server"]
    if not net_raw:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise LabError("setpriv (util-linux) is not installed")
        argv = [setpriv, "--bounding-set=-net_raw", "--inh-caps=-net_raw", *argv]
    rows = [[r.mac, r.ip, r.vm, *([r.ip6] if r.ip6 else [])] for r in reservations]
    with tempfile.TemporaryDirectory(prefix="kvip-pool-") as tmp:
        workdir = Path(tmp)
        config = workdir / "pool.json"
        config.write_text(json.dumps({"ippool": body, "reservations": rows}))
        with open(workdir / "stdout", "wb") as out, open(workdir / "stderr", "wb") as err:
            proc = lab.popen(
                lab.server, [*argv, "--config", str(config)], stdout=out, stderr=err, cwd=REPO
            )
        server = PoolProcess(proc, workdir)
        try:
            _wait_serving(lab, server)
            yield server
        finally:
            stop_process(proc, grace=5)


def _wait_serving(lab: Lab, server: PoolProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        server.check_alive()
        ready = server.stdout().startswith("ready")
        if ready and run_in(lab.server, ["ss", "-Hlun", "sport = :547"], check=False).stdout:
            return
        time.sleep(0.05)
    raise LabError(f"kvip did not serve DHCPv6 in {START_TIMEOUT}s:\n{server.log()[-3000:]}")
