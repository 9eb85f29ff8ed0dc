"""Suite-wide rules.

In CI (CI=true) a test that would be skipped fails instead: tests that need
root, network namespaces, the API server or a DHCP client must run there.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.lab.fixtures_apiserver", "tests.lab.e2e_world"]

IN_CI = os.environ.get("CI", "").lower() == "true"

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if IN_CI else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, where every test must run: {reason}"


#: Host files a misbehaving DHCP client hook would overwrite.
HOST_FILES = ("/etc/resolv.conf", "/etc/hostname", "/etc/hosts")


@pytest.fixture(scope="session", autouse=True)
def host_files_untouched() -> Generator[None, None, None]:
    """Tests run real DHCP clients; none may change the host's own configuration.
    If one did, put the file back and fail the run loudly."""
    before = {}
    for path in HOST_FILES:
        try:
            with open(path, "rb") as file:
                before[path] = file.read()
        except OSError:
            continue
    yield
    changed = []
    for path, content in before.items():
        with open(path, "rb") as file:
            if file.read() != content:
                changed.append(path)
                with open(path, "wb") as restore:
                    restore.write(content)
    assert not changed, f"tests changed host files (restored now): {changed}"
