"""`kvip run` as a real process, for tests of what only a process shows:
signals, leader election across processes, the HTTP endpoints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.lab.e2e_world import World

_PORT = re.compile(r"metrics and probes on http://127\.0\.0\.1:(\d+)/")


class KvipProcess:
    def __init__(self, kubeconfig: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log_file = Path(tempfile.mkstemp(prefix="kvip-", suffix=".log")[1])
        self._log = self.log_file.open("w")
        self._final_log: str | None = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kvip", "run", "--kubeconfig", str(kubeconfig),
             "--metrics-address", "127.0.0.1", "--metrics-port", "0", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LOGLEVEL": "INFO", **(env or {})},
        )  # fmt: skip
        self.port = self._wait_port()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        if self._final_log is not None:
            return self._final_log
        return self.log_file.read_text()

    def _wait_port(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _PORT.search(self.log())
            if match:
                return int(match.group(1))
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"kvip did not start:\n{self.log()}")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def is_leader(self) -> bool:
        status, body = self.get("/metrics")
        return status == 200 and "\nkvip_leader 1.0" in body

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, *, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> KvipProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._final_log = self.log_file.read_text()
        self.log_file.unlink(missing_ok=True)


#: Election timings that make a takeover take seconds, not a quarter minute.
FAST_LEASE = ("--lease-duration", "4", "--renew-deadline", "3", "--retry-period", "0.5")


def kvip_process(w: World, lease: str, *extra: str) -> KvipProcess:
    """A replica of the e2e world's kvip: its pools' sockets in the lab, its
    election on a Lease of its own with fast timings."""
    return KvipProcess(
        w.api.kubeconfig,
        "--socket-netns", w.lab.server,
        "--pool-selector", w.selector,
        "--lease-name", lease,
        "--lease-namespace", w.namespace,
        *FAST_LEASE,
        *extra,
    )  # fmt: skip
