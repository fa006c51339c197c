"""Suite-wide test settings.

The suite runs as two pytest-xdist workers on a 2-core machine; each worker uses one torch
thread, since two busy workers with two threads each stall one another (measured 10-50x on
small ops).
"""

import os

import pytest
import torch

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """CUDA tests skip without CUDA; real-weight tests skip unless SCENEDREAMER_REAL_WEIGHTS=1."""
    no_cuda = pytest.mark.skip(reason="needs a CUDA device")
    no_weights = pytest.mark.skip(reason="real-weight test: set SCENEDREAMER_REAL_WEIGHTS=1 to run")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_cuda)
        if "real_weights" in item.keywords and os.environ.get("SCENEDREAMER_REAL_WEIGHTS") != "1":
            item.add_marker(no_weights)
