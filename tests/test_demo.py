"""`make demo` works: the README's first command, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.apiserver import missing_binaries

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.netns, pytest.mark.apiserver, pytest.mark.slow]


def test_demo_serves_the_vm_its_reserved_address() -> None:
    if os.geteuid() != 0:
        pytest.skip("the demo needs root for network namespaces")
    if missing_binaries():
        pytest.skip("no kube-apiserver yet: run scripts/build-apiserver.sh (make apiserver)")
    result = subprocess.run(
        [sys.executable, "-m", "scripts.demo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary == {"demo": "ok", "ip": "198.18.0.10"}
    assert "udhcpc got 198.18.0.10 mask 255.255.0.0" in result.stdout
    assert "kvip stopped" in result.stderr
