"""The calling thread without a capability for a while, as kvip's pod runs
without any: capget/capset(2) on the thread's effective set only, so the
permitted set keeps the capability and it comes back at the block's end.
Other threads of the process keep theirs (capabilities are per thread)."""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

__all__ = ["CAP_NET_RAW", "lowered"]

CAP_NET_RAW = 13
_VERSION_3 = 0x20080522  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_libc = ctypes.CDLL(None, use_errno=True)


def _get() -> tuple[_Header, ctypes.Array[_Data]]:
    header, data = _Header(_VERSION_3, 0), (_Data * 2)()
    if _libc.capget(ctypes.byref(header), data) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), "capget")
    return header, data


def _set(header: _Header, data: ctypes.Array[_Data]) -> None:
    if _libc.capset(ctypes.byref(header), data) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), "capset")


@contextlib.contextmanager
def lowered(capability: int) -> Iterator[None]:
    """The calling thread without `capability` in its effective set for the
    block (it stays permitted, so it is raised again afterwards)."""
    header, data = _get()
    word, bit = divmod(capability, 32)
    held = data[word].effective & (1 << bit)
    data[word].effective &= ~(1 << bit)
    _set(header, data)
    try:
        yield
    finally:
        if held:
            header, data = _get()
            data[word].effective |= 1 << bit
            _set(header, data)
