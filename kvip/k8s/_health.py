"""Whether the API server answers, and since when it has not.

Watchers, `Kube.run` and the leader elector each learn separately whether a
request reached the API server; they all report to the Kube's one `ApiHealth`,
which turns their reports into one state: reachable, or unreachable since the
first failure after the last success. It logs one warning when the API server
goes away and one line when it is back (not one per failed request), and the
metric `kvip_api_server_unreachable_seconds` reads `unreachable_for()`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kvip.k8s._errors import KubeError, Unavailable

log = logging.getLogger(__name__)

#: How `translate` words an error that never reached the server; not said twice.
_PREFIX = "API server unreachable: "


def reached(error: KubeError) -> bool | None:
    """Whether the API server answered the request that failed with `error`:
    False for a connection error, a timeout or a 5xx; True for a 4xx (NotFound,
    Conflict, Forbidden, Invalid, Gone, 429: the server is there and said no);
    None when the error says nothing about it (a bug in the client, say)."""
    status = error.status
    if status is not None:
        return status < 500
    return False if isinstance(error, Unavailable) else None


class ApiHealth:
    """Reachability of the API server, from the outcomes of kvip's requests.

    Not thread-safe: report from one thread (kvip reports from the trio thread;
    worker threads go through `trio.from_thread`). `clock` is monotonic seconds;
    tests pass a fake one.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        #: When the first failure after the last success was reported; None while
        #: the API server answers.
        self.unreachable_since: float | None = None

    def succeeded(self) -> None:
        """A request got an answer from the API server (any answer but a 5xx)."""
        since = self.unreachable_since
        if since is None:
            return
        self.unreachable_since = None
        log.info("API server reachable again after %.1f s", self.clock() - since)

    def failed(self, error: BaseException) -> None:
        """A request did not reach the API server, timed out, or got a 5xx."""
        if self.unreachable_since is not None:
            return
        self.unreachable_since = self.clock()
        message = str(error).removeprefix(_PREFIX)
        log.warning("API server unreachable: %s; serving from the last known state", message)

    def observe(self, error: KubeError) -> None:
        """Report a failed request by what its error says about the server."""
        answered = reached(error)
        if answered is True:
            self.succeeded()
        elif answered is False:
            self.failed(error)

    def unreachable_for(self) -> float:
        """Seconds since the API server became unreachable; 0.0 while it answers."""
        since = self.unreachable_since
        return 0.0 if since is None else max(0.0, self.clock() - since)
