"""Fewer glibc malloc arenas: less memory for a fleet, the same work.

glibc gives threads that allocate at the same time arenas of their own, up to eight per core.
The collections of a fleet run on a pool of worker threads, and every arena they touch keeps
its freed memory fragmented and resident: at 200 gateways that is megabytes of peak memory for
nothing. Two arenas keep the threads from queueing on one lock while keeping the rest.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Mapping
from typing import Any

M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
ARENAS = 2


def _libc() -> Any:
    return ctypes.CDLL(None)


def limit_arenas(
    environ: Mapping[str, str] = os.environ, libc: Callable[[], Any] = _libc, arenas: int = ARENAS
) -> bool:
    """At most ``arenas`` malloc arenas from now on; True when the C library took it. Before any
    worker thread starts. A ``MALLOC_ARENA_MAX`` the user set wins; a C library without
    ``mallopt`` (musl) is left as it is."""
    if "MALLOC_ARENA_MAX" in environ:
        return False
    try:
        mallopt = libc().mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))
