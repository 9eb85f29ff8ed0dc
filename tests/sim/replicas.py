"""The API double as one kvip replica sees it: every replica serves, only the
leader writes. A write to the double that a replica began while it did not
lead is a violation (a write begun while leading may land after a step-down,
as a request already sent does on a real API server)."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any, TypeVar, cast

from kvip.k8s import Kube
from tests.sim.apidouble import ApiDouble

T = TypeVar("T")

#: Whether the replica led when the current API call began (None: not in a call).
_began_leading: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "began_leading", default=None
)

WRITES = ("create", "replace", "patch", "delete")


class ReplicaView:
    """Forwards everything to the shared double; checks the writes."""

    def __init__(
        self, double: ApiDouble, name: str, leading: Callable[[], bool], violations: list[str]
    ) -> None:
        self._double = double
        self._name = name
        self._leading = leading
        self._violations = violations

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._double, attribute)
        if attribute in WRITES:
            return self._guarded(attribute, value)
        return value

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        token = _began_leading.set(self._leading())
        try:
            return await self._double.run(fn, *args)
        finally:
            _began_leading.reset(token)

    def _guarded(self, op: str, write: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            began = _began_leading.get()
            if not (self._leading() if began is None else began):
                what = getattr(args[0], "plural", args[0]) if args else "?"
                self._violations.append(f"write: {self._name} did {op} {what} while following")
            return write(*args, **kwargs)

        return guarded

    @property
    def double(self) -> ApiDouble:
        """The shared double (its watch is read as it is)."""
        return self._double

    @property
    def kube(self) -> Kube:
        """This view, typed as what the Controller takes."""
        return cast(Kube, self)
