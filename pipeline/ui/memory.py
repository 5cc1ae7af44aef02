"""Give the memory of a decoded upload back to the system as soon as it is freed.

glibc's malloc keeps freed memory for reuse: large blocks go back to the system only while
they are above a threshold that grows, after each one freed, up to 32 MB; the rest stays in
the heap of whichever thread freed it, one heap per thread, until a trim. A server that
decodes a 40 MB image now and then on a pool of threads so grew by hundreds of MB and never
shrank. With the threshold fixed at 1 MB (every pixel buffer and upload is mapped on its own
and unmapped when freed) and a trim after each decode, the process returns to its idle size.
Elsewhere than glibc both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h
MMAP_THRESHOLD = 1 << 20


@functools.cache
def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def map_large_blocks() -> None:
    """Every allocation over MMAP_THRESHOLD gets its own mapping, returned when freed."""
    if libc := _libc():
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def trim() -> None:
    """Return the free memory at the top and in the middle of every heap to the system."""
    if libc := _libc():
        libc.malloc_trim(0)
