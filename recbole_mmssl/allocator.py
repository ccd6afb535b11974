"""Let glibc's malloc keep freed memory for reuse during CPU training.

Why: an MMSSL iteration on TikTok allocates and frees tens of 7-45 MB tensors (critic activations,
their gradients, Adam's temporaries). glibc serves blocks that large with fresh ``mmap`` calls and
unmaps them on free, so every one of them is page-faulted and zeroed by the kernel again: about
40,000 page faults and 0.3 s of system time per 3.6 s iteration on one core here. With mmap off
and heap trimming raised, freed blocks are reused instead (``benchmarks/speed.py`` measures the
epoch both ways; ``malloc_reuse`` in MMSSL.yaml turns it off). Values are unaffected.

The setting is process-wide and lasts for the process: memory freed after the peak is kept by the
process rather than returned to the system, like a GPU caching allocator does.
"""

import ctypes
import ctypes.util
import functools

#: mallopt parameters (glibc malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: Largest value mallopt takes (an int): free heap top above 2 GiB is still returned.
TRIM_THRESHOLD_BYTES = 2**31 - 1


@functools.lru_cache(maxsize=None)
def _glibc():
    """The C library if it is glibc (has ``mallopt`` and ``gnu_get_libc_version``), else None."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # glibc only (musl, macOS and Windows have no such symbol)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


@functools.lru_cache(maxsize=None)
def keep_freed_memory() -> bool:
    """Switch glibc malloc to reuse freed blocks (no mmap, high trim threshold); True if applied.

    Idempotent; a no-op returning False where the C library is not glibc.
    """
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
