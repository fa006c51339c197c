"""Hand the memory a stage freed back to the operating system before the next stage starts.

A run's stages take turns on the CPU: the diffusion networks' activations (1-2 GB at 512x512
while a UNet runs), the adapter's backward pass, the representation's fitting. Each frees what
it used, but glibc's allocator keeps much of it: its mmap threshold grows to the size of the
largest block freed (up to 32 MB on 64-bit), so later large tensors come from the heap, and freed
heap pages stay resident unless they sit at the very top of it. The resident size then stays at
the high-water mark of every stage, and the next stage adds its own on top (issue 24: the
fitting stage's peak of a `sd15-fast` run sat 1.2 GiB above the networks it kept loaded).
``malloc_trim(0)`` returns the free pages of every arena to the system (glibc >= 2.8 releases
the inside of free chunks, not only the heap's top) in a few milliseconds.

No-op where the C library is not glibc (musl, macOS, Windows): those allocators return memory
their own way. Nothing here changes a computed value.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=1)
def _glibc_malloc_trim():
    """glibc's ``malloc_trim`` (int malloc_trim(size_t pad)), or None when it is not there."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the heap memory this process has freed to the operating system (glibc's
    ``malloc_trim(0)``). True when the C library could do it (whether or not there was
    anything to return), False where it has no such call."""
    trim = _glibc_malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True

