"""Errors of the Kubernetes layer, named after what went wrong.

The rest of kvip never sees `kubernetes.client.ApiException` or urllib3's
errors: every call in this package translates them into these.
"""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError


class KubeError(Exception):
    """A call to the Kubernetes API failed."""

    status: int | None = None
    #: True when retrying the same call later may succeed.
    temporary = False
    #: True when the API server refused for a reason that retrying alone does not
    #: change (403, 422, ...): someone must change something (RBAC, a policy).
    permanent = True


class NotFound(KubeError):
    status = 404
    permanent = False  # a race with the watch: read again


class Conflict(KubeError):
    """409: the object changed since it was read, or already exists."""

    status = 409
    permanent = False  # a race with another writer: read again


class Gone(KubeError):
    """410: the resourceVersion is too old (etcd compacted); relist."""

    status = 410
    permanent = False


class Invalid(KubeError):
    """422: the object does not pass the API server's validation."""

    status = 422


class Forbidden(KubeError):
    status = 403


class Unauthorized(KubeError):
    status = 401


class Unavailable(KubeError):
    """The API server could not be reached, or answered 5xx or 429."""

    temporary = True
    permanent = False


_BY_STATUS: dict[int, type[KubeError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
}


def _message_of(exc: ApiException) -> str:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            status = json.loads(body)
        except ValueError:
            return body.strip()[:500]
        if isinstance(status, dict) and isinstance(status.get("message"), str):
            return str(status["message"])
    return str(exc.reason or "no reason given")


def translate(exc: BaseException) -> KubeError:
    """The KubeError for an exception raised by the kubernetes client."""
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, ApiException):
        status = int(exc.status) if exc.status else None
        cls = _BY_STATUS.get(status or 0)
        if cls is None:
            cls = Unavailable if status is None or status >= 500 or status == 429 else KubeError
        error = cls(f"{status or 'no status'}: {_message_of(exc)}")
        error.status = status
        return error
    if isinstance(exc, (HTTPError, OSError)):
        return Unavailable(f"API server unreachable: {exc}")
    return KubeError(f"unexpected client error: {exc!r}")
