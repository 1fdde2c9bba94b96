"""Process-level allocator tuning: few glibc malloc arenas.

The service runs the engine and the stores in a pool of worker threads. glibc gives threads
their own malloc arenas (up to 8 per core) and returns little of their freed memory to the
system, so a busy process's RSS grows far past what it holds: in a soak at 5,000 pings/s the
server grew by about 7 KB per ping with glibc's default and 0.7 KB per ping (the event log filling
up) with two arenas (``bench/bench_soak.py``). ``MALLOC_ARENA_MAX`` in the environment does the
same, but only when set before the process starts; :func:`limit_arenas` applies it from inside,
before the worker threads exist.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["limit_arenas"]

logger = logging.getLogger("proximity.service")

_M_ARENA_MAX = -8  # glibc's malloc.h


def limit_arenas(n: int) -> bool:
    """Cap glibc's malloc arenas at ``n`` (0: leave the default); return whether it applied
    (False on a C library without ``mallopt``, such as musl or macOS's)."""
    if n <= 0:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_ARENA_MAX, n) == 1
    if not ok:
        logger.warning("mallopt(M_ARENA_MAX, %d) failed; RSS may grow past what the process holds", n)
    return ok
