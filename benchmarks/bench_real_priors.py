"""CPU figures of the real-prior wrappers' own work (tiny random networks; the networks' cost on
real weights is measured by benchmarks/device/priors_memory.py on a GPU).

    .venv/bin/python -m benchmarks.bench_real_priors

Figures: depth preprocessing on the tensor (ours) vs the transformers PIL processor (reference)
at 480x640; inpainting paste-back with the feathered seam at 512x512; tiny SD inpainting call
end to end at 64x64 (2 steps). Written to benchmarks/results/real_priors.json.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from scenedreamer.atomic import atomic_write_json  # noqa: E402
from scenedreamer.priors.depth_networks import (TransformersDepthEstimator, preprocess,  # noqa: E402
                                                reference_preprocess)
from scenedreamer.priors.diffusion import DiffusionConfig, StableDiffusionInpainter, paste_back  # noqa: E402
from scenedreamer.priors.loading import ModelLoadConfig  # noqa: E402

REPEATS = 5
"""Timed repetitions per figure (the median is reported)."""


def median_ms(fn, repeats: int = REPEATS) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1000 * sorted(times)[len(times) // 2], 3)


def main() -> int:
    from tiny_models import TINY_STEPS, tiny_depth_model, tiny_sd_pipeline

    figures: dict[str, float] = {}
    gen = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("zoedepth", "depth_anything"):
            folder = Path(tmp) / kind
            tiny_depth_model(kind, folder)
            est = TransformersDepthEstimator.load(folder, ModelLoadConfig())
            # the real models' input sizes, so the resize cost is the real one
            processor = est.network.processor
            processor.size = {"height": 384, "width": 512} if kind == "zoedepth" else {"height": 518, "width": 518}
            est = TransformersDepthEstimator(est.network)
            image = torch.rand(480, 640, 3, generator=gen)
            figures[f"{kind}_preprocess_ours_ms"] = median_ms(lambda: preprocess(image, est.spec, torch.float32))
            figures[f"{kind}_preprocess_reference_ms"] = median_ms(lambda: reference_preprocess(image, processor))
        original, generated = torch.rand(512, 512, 3, generator=gen), torch.rand(512, 512, 3, generator=gen)
        hole = torch.zeros(512, 512, dtype=torch.bool)
        hole[:, 384:] = True
        figures["paste_back_512_feather8_ms"] = median_ms(lambda: paste_back(original, generated, hole, 8))
        folder = Path(tmp) / "sd-inpaint"
        tiny_sd_pipeline(folder, inpainting=True)
        inpainter = StableDiffusionInpainter.load(folder, ModelLoadConfig(),
                                                  DiffusionConfig(num_inference_steps=TINY_STEPS))
        small, small_hole = torch.rand(64, 64, 3, generator=gen), torch.zeros(64, 64, dtype=torch.bool)
        small_hole[:, 40:] = True
        figures["tiny_inpaint_64px_2steps_ms"] = median_ms(
            lambda: inpainter.inpaint(small, small_hole, "a room", torch.Generator().manual_seed(0)))
    for name, value in figures.items():
        print(f"{name}: {value}")
    results = dict(machine=dict(processor=platform.processor(), machine=platform.machine(), cores=os.cpu_count(),
                                torch=torch.__version__, torch_threads=torch.get_num_threads()),
                   note="2-core shared machine while other helpers ran: figures inflated", figures=figures)
    out = ROOT / "benchmarks" / "results" / "real_priors.json"
    atomic_write_json(out, results)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
