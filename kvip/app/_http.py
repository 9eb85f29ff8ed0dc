"""The metrics and probe endpoint: /metrics, /healthz, /readyz, and the
read-only /debug/pools and /debug/mac/<mac> (JSON; shapes in _debug.py).

A deliberately small HTTP/1.0 server on trio, in the thread of the actors'
inbox tasks: a scrape reads their state between two of their steps, and a
liveness probe that gets an answer proves the event loop is not stuck. The
pools' packet threads keep counting meanwhile; what they count is read as a
snapshot under each pool's lock (PoolActor.figures).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

import trio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from kvip.actors import PoolActor
from kvip.app._debug import mac_view, normal_mac, pools_view

log = logging.getLogger(__name__)

MAX_REQUEST = 8192
REQUEST_TIMEOUT = 5.0
USAGE = b"GET /metrics, /healthz, /readyz, /debug/pools or /debug/mac/<mac>\n"


def _response(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (
        f"HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _json(status: str, body: dict[str, Any]) -> bytes:
    return _response(status, json.dumps(body).encode() + b"\n", "application/json")


class ProbeServer:
    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        ready: Callable[[], tuple[bool, str]],
        address: str = "0.0.0.0",
        port: int = 8080,
        pools: Callable[[], Mapping[str, PoolActor]] = dict,
    ) -> None:
        self.registry = registry
        self.ready = ready
        #: The running pools' actors, by IPPool name (for /debug).
        self.pools = pools
        self.address = address
        self.port = port
        #: The port actually bound (useful with port 0).
        self.bound_port: int | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.address)
        self.bound_port = listeners[0].socket.getsockname()[1]
        log.info("metrics and probes on http://%s:%d/", self.address, self.bound_port)
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(REQUEST_TIMEOUT):
                request = b""
                while b"\r\n\r\n" not in request and len(request) < MAX_REQUEST:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    request += chunk
                await stream.send_all(self._answer(request))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            await stream.aclose()

    def _answer(self, request: bytes) -> bytes:
        line = request.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split()
        if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
            return _response("400 Bad Request", USAGE)
        path = parts[1].split("?", 1)[0]
        if path == "/metrics":
            return _response("200 OK", generate_latest(self.registry), CONTENT_TYPE_LATEST)
        if path == "/healthz":
            return _response("200 OK", b"ok\n")
        if path == "/readyz":
            ok, why = self.ready()
            status = "200 OK" if ok else "503 Service Unavailable"
            return _response(status, why.encode() + b"\n")
        if path == "/debug/pools":
            return _json("200 OK", pools_view(self.pools()))
        if path.startswith("/debug/mac/"):
            mac = normal_mac(unquote(path.removeprefix("/debug/mac/")))
            if mac is None:
                return _json("400 Bad Request", {"error": f"not a MAC address: {path[11:]!r}"})
            return _json("200 OK", mac_view(self.pools(), mac))
        return _response("404 Not Found", USAGE)
