"""A real, local Kubernetes API server for tests, benchmarks and the demo.

etcd and kube-apiserver (optionally kube-controller-manager) run as child
processes listening on 127.0.0.1 only, on free ports, with all state in a temp
dir that is deleted on stop. The binaries come from scripts/build-apiserver.sh
(TESTING.md section 4).

    with ApiServer() as api:
        kubernetes.config.load_kube_config(config_file=str(api.kubeconfig))

From a shell: `python -m tests.lab.apiserver run [--controller-manager] [-- CMD ...]`
prints the kubeconfig path and serves until Ctrl-C, or runs CMD with
KUBECONFIG set and stops when it exits.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from tests.lab.apiserver_pki import Credentials, make_credentials, write_kubeconfig

DEFAULT_CACHE = Path("/var/cache/kvip")
REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-apiserver.sh"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/24"
_STOP_GRACE = 10.0
_POLL = 0.1


class ApiServerError(Exception):
    """The local API server could not be run."""


class BinaryMissingError(ApiServerError):
    """A binary is neither cached nor installed; scripts/build-apiserver.sh makes it."""


class StartupError(ApiServerError):
    """A process exited or did not become ready in time."""


def cache_dir() -> Path:
    return Path(os.environ.get("KVIP_CACHE") or DEFAULT_CACHE)


def build_recipe() -> str:
    """The build script's RECIPE: cached binaries of another recipe are stale."""
    found = re.search(r"^RECIPE=(\S+)$", BUILD_SCRIPT.read_text(), re.MULTILINE)
    if found is None:
        raise ApiServerError(f"no RECIPE= line in {BUILD_SCRIPT}")
    return found.group(1)


def find_binary(name: str) -> Path:
    """kube-* binaries live in the build cache; etcd comes from Debian's etcd-server."""
    hint = f"run {BUILD_SCRIPT.relative_to(REPO)}"
    if name.startswith("kube-"):
        path = cache_dir() / "bin" / name
        if os.access(path, os.X_OK):
            stamp = path.with_name(f"{name}.recipe")
            recipe = stamp.read_text().strip() if stamp.exists() else "none"
            if recipe != build_recipe():
                raise BinaryMissingError(f"{path} is from an outdated build: {hint}")
            return path
    elif found := shutil.which(name):
        return Path(found)
    raise BinaryMissingError(f"{name} not found: {hint}")


def missing_binaries(*, controller_manager: bool = False) -> list[str]:
    """Why each binary the runner needs cannot be used (empty: all there)."""
    names = ["etcd", "kube-apiserver", "openssl"]
    if controller_manager:
        names.append("kube-controller-manager")
    missing = []
    for name in names:
        try:
            find_binary(name)
        except BinaryMissingError as error:
            missing.append(str(error))
    return missing


_WORKDIR_PREFIX = "kvip-apiserver-"
_OWNER_FILE = "owner.pid"


def _sweep_stale_workdirs() -> None:
    """Removes work dirs whose owning process is gone (killed runs)."""
    for stale in Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*"):
        try:
            owner = int((stale / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not Path(f"/proc/{owner}").exists():
            shutil.rmtree(stale, ignore_errors=True)


def check_loopback() -> None:
    """In a new network namespace lo is down: binding 127.0.0.1 still works
    but every connection fails, and start-up would only time out."""
    flags = int(Path("/sys/class/net/lo/flags").read_text(), 16)
    if not flags & 0x1:  # IFF_UP
        raise ApiServerError("the loopback interface is down: run `ip link set lo up` first")


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1. Another process may
    grab it before our child binds it: start() retries on that."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent dies, so a
    killed test run (SIGKILL, or SIGTERM, which skips `finally`) leaves no
    etcd or API server behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _Child:
    """One child process, its output in a log file in the work dir."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        # The death signal fires when the *thread* that forked exits: only use
        # it from the main thread (a worker thread may end while we run on).
        on_main = threading.current_thread() is threading.main_thread()
        with log.open("ab") as out:
            # Own session: a Ctrl-C meant for the test run reaches us, and we
            # stop the children in order.
            self.popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent if on_main else None,
            )  # fmt: skip

    def exited(self) -> int | None:
        return self.popen.poll()

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(_STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def _http_ok(url: str, *, context: ssl.SSLContext | None = None, token: str | None = None) -> bool:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait_until(ready: Callable[[], bool], *, what: str, child: _Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if (code := child.exited()) is not None:
            raise StartupError(f"{child.name} exited with {code}:\n{child.log_tail()}")
        if time.monotonic() > deadline:
            raise StartupError(f"{what} not ready after {timeout:.0f} s:\n{child.log_tail()}")
        time.sleep(_POLL)


class ApiServer:
    """etcd + kube-apiserver (+ kube-controller-manager) on 127.0.0.1.

    Attributes once started: `kubeconfig`, `url`, `token`, `ca_file`,
    `etcd_url`, `workdir`, `startup_seconds`.
    """

    def __init__(
        self,
        *,
        controller_manager: bool = False,
        watch_cache: bool = True,
        workdir: Path | None = None,
        startup_timeout: float = 90.0,
    ) -> None:
        self.controller_manager = controller_manager
        self.watch_cache = watch_cache
        self.startup_timeout = startup_timeout
        self._own_workdir = workdir is None
        if workdir is None:
            _sweep_stale_workdirs()
            workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
            (workdir / _OWNER_FILE).write_text(str(os.getpid()))
        self.workdir = workdir
        self.kubeconfig = self.workdir / "kubeconfig"
        self.url = ""
        self.etcd_url = ""
        self.startup_seconds = 0.0
        self._creds: Credentials | None = None
        self._etcd: _Child | None = None
        self._apiserver: _Child | None = None
        self._controller_manager: _Child | None = None
        self._port = 0

    @property
    def token(self) -> str:
        return self._credentials.token

    @property
    def ca_file(self) -> Path:
        return self._credentials.ca_file

    @property
    def _credentials(self) -> Credentials:
        if self._creds is None:
            raise ApiServerError("the API server is not started")
        return self._creds

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, *, attempts: int = 3) -> ApiServer:
        """Starts everything and waits until the `default` namespace exists.
        Retries with new ports when one was taken between choosing and binding."""
        began = time.monotonic()
        try:
            if missing := missing_binaries(controller_manager=self.controller_manager):
                raise BinaryMissingError("; ".join(missing))
            check_loopback()
            self._creds = make_credentials(self.workdir / "pki")
            for attempt in range(1, attempts + 1):
                try:
                    self._start_etcd()
                    self._port = free_port()
                    self.url = f"https://127.0.0.1:{self._port}"
                    self.start_apiserver()
                    break
                except StartupError as error:
                    self._stop_children()
                    if attempt == attempts or "address already in use" not in str(error):
                        raise
            write_kubeconfig(self.kubeconfig, url=self.url, ca_file=self.ca_file, token=self.token)
            if self.controller_manager:
                self._start_controller_manager()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def pids(self) -> dict[str, int]:
        """Process ids of the running children, by program name."""
        children = (self._etcd, self._apiserver, self._controller_manager)
        return {c.name: c.popen.pid for c in children if c is not None and c.exited() is None}

    def stop(self) -> None:
        """Stops every process and removes the work dir. Safe to call twice."""
        self._stop_children()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _stop_children(self) -> None:
        # Clients first, etcd last: the API server flushes nothing on exit,
        # but stopping etcd first makes it log a storm of connection errors.
        for child in (self._controller_manager, self._apiserver, self._etcd):
            if child is not None:
                child.stop()
        self._controller_manager = self._apiserver = self._etcd = None

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        data = self.workdir / "etcd"
        shutil.rmtree(data, ignore_errors=True)
        peer_url = f"http://127.0.0.1:{peer}"
        argv = [
            str(find_binary("etcd")),
            "--name=kvip",
            f"--data-dir={data}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=kvip={peer_url}",
            # Test data is thrown away: durability only costs time here.
            "--unsafe-no-fsync",
            "--logger=zap",
            "--log-level=warn",
        ]
        self._etcd = _Child("etcd", argv, self.workdir / "etcd.log")
        _wait_until(
            lambda: _http_ok(f"{self.etcd_url}/health"),
            what="etcd",
            child=self._etcd,
            timeout=self.startup_timeout,
        )

    def start_apiserver(self) -> None:
        """(Re)starts kube-apiserver on the same port with the same etcd and
        credentials, and waits until it serves."""
        if self._apiserver is not None and self._apiserver.exited() is None:
            raise ApiServerError("kube-apiserver is already running")
        creds = self._credentials
        argv = [
            str(find_binary("kube-apiserver")),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self._port}",
            # 1.20 still serves plain HTTP on localhost:8080 unless told not to.
            "--insecure-port=0",
            f"--cert-dir={self.workdir / 'pki'}",
            f"--tls-cert-file={creds.server_cert}",
            f"--tls-private-key-file={creds.server_key}",
            f"--token-auth-file={creds.token_file}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={creds.sa_pub}",
            f"--service-account-signing-key-file={creds.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # No kubelets or nodes: nothing would keep the kubernetes
            # service's endpoints right, and no pod needs a token mounted.
            "--endpoint-reconciler-type=none",
            "--disable-admission-plugins=ServiceAccount",
            f"--watch-cache={'true' if self.watch_cache else 'false'}",
            "--profiling=false",
            "--logtostderr=true",
            "--v=1",
        ]
        self._apiserver = _Child("kube-apiserver", argv, self.workdir / "kube-apiserver.log")
        context = ssl.create_default_context(cafile=str(creds.ca_file))
        _wait_until(
            lambda: (
                _http_ok(f"{self.url}/readyz", context=context, token=creds.token)
                and _http_ok(
                    f"{self.url}/api/v1/namespaces/default", context=context, token=creds.token
                )
            ),
            what="kube-apiserver",
            child=self._apiserver,
            timeout=self.startup_timeout,
        )

    def stop_apiserver(self) -> None:
        """Stops kube-apiserver only (etcd keeps the data): an API outage."""
        if self._apiserver is not None:
            self._apiserver.stop()

    def restart(self) -> None:
        """Restarts kube-apiserver: clients see connection errors, then the
        same data at the same URL. Watches must be re-established."""
        self.stop_apiserver()
        self.start_apiserver()

    def _etcd_post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        request = urllib.request.Request(
            f"{self.etcd_url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, object] = json.load(response)
            return result

    def etcd_revision(self) -> int:
        """etcd's current revision, through its v3 JSON gateway."""
        key = base64.b64encode(b"/kvip-probe").decode()
        reply = self._etcd_post("/v3/kv/range", {"key": key, "count_only": True})
        header = reply["header"]
        assert isinstance(header, dict)
        return int(header["revision"])

    def etcd_compact(self) -> int:
        """Compacts etcd's history at the current revision and returns it: a
        later watch or list from an older resourceVersion that reaches etcd
        gets 410 Gone. (The API server's watch cache may still answer from
        memory; start with `watch_cache=False` to reach etcd every time.)"""
        revision = self.etcd_revision()
        self._etcd_post("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def _start_controller_manager(self) -> None:
        creds = self._credentials
        argv = [
            str(find_binary("kube-controller-manager")),
            f"--kubeconfig={self.kubeconfig}",
            "--controllers=garbagecollector,namespace,serviceaccount-token",
            "--use-service-account-credentials=false",
            f"--service-account-private-key-file={creds.sa_key}",
            f"--root-ca-file={creds.ca_file}",
            "--leader-elect=false",
            # No serving at all: 1.20 would otherwise open an insecure port on
            # every interface.
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--port=0",
            "--logtostderr=true",
            "--v=1",
        ]
        self._controller_manager = _Child(
            "kube-controller-manager", argv, self.workdir / "kube-controller-manager.log"
        )
        # It has no health endpoint without a port; it only needs to stay up.
        time.sleep(0.5)
        if (code := self._controller_manager.exited()) is not None:
            raise StartupError(
                f"kube-controller-manager exited with {code}:\n"
                f"{self._controller_manager.log_tail()}"
            )


def build_binaries(*, controller_manager: bool = False) -> None:
    """Runs scripts/build-apiserver.sh (about 7 minutes the first time)."""
    argv = ["bash", str(BUILD_SCRIPT)]
    if controller_manager:
        argv.append("--with-controller-manager")
    subprocess.run(argv, check=True)


def _run(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.lab.apiserver")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve until Ctrl-C, or run CMD against it")
    run.add_argument("--controller-manager", action="store_true")
    run.add_argument("--build", action="store_true", help="build missing binaries first")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if args.build:
        build_binaries(controller_manager=args.controller_manager)
    with ApiServer(controller_manager=args.controller_manager) as api:
        print(f"API server ready at {api.url} after {api.startup_seconds:.1f} s", flush=True)
        print(f"export KUBECONFIG={api.kubeconfig}", flush=True)
        if cmd:
            env = {**os.environ, "KUBECONFIG": str(api.kubeconfig)}
            return subprocess.run(cmd, env=env, check=False).returncode
        with contextlib.suppress(KeyboardInterrupt):
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            signal.pause()
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(_run(sys.argv[1:]))
