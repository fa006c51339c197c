"""memory.release_free_memory gives freed heap pages back to the system (issue 24: a run's
stages must not stack their high-water marks)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# In a fresh process: raise glibc's mmap threshold by freeing a 24 MB mapped block (as a UNet's
# activations do), fill 256 MB of 1 MB tensors (now from the heap), pin the heap's top with one
# more tensor, free the 256: the freed pages stay resident until release_free_memory.
CHILD = """
import os, torch
from scenedreamer.memory import release_free_memory
def resident_bytes():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
big = torch.ones(24 << 20, dtype=torch.uint8); del big
chunks = [torch.ones(1 << 20, dtype=torch.uint8) for _ in range(256)]
pin = torch.ones(1 << 20, dtype=torch.uint8)
del chunks
before = resident_bytes()
released = release_free_memory()
print(before, resident_bytes(), released)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim: Linux only")
def test_freed_heap_memory_goes_back_to_the_system():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    before, after, released = out.stdout.split()
    if released != "True":
        pytest.skip("the C library is not glibc (no malloc_trim)")
    # 256 MB were freed; at least 200 MB of them leave the resident set (the rest: allocator slack)
    assert int(before) - int(after) > 200 << 20, (before, after)

