"""A scene task with injected faults for the batch tests (SCENEDREAMER_BATCH_TASK=batch_faults:run_scene).

A prompt containing FAIL_ONCE kills its worker process on the first attempt (a marker file
beside the run folder remembers it), one containing ALWAYS_FAIL raises every time; anything
else runs the real scene task.
"""

import os
from pathlib import Path

from scenedreamer.batch.worker import run_scene as real_run_scene


def run_scene(config_data: dict, run_folder: str):
    prompt = config_data["prompt"]
    if "ALWAYS_FAIL" in prompt:
        raise RuntimeError("injected failure")
    marker = Path(run_folder + ".failed-once")
    if "FAIL_ONCE" in prompt and not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("1")
        os._exit(3)          # the worker dies without reporting anything
    return real_run_scene(config_data, run_folder)
