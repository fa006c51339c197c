"""ZoeDepth, Depth Anything (V1/V2) and DPT behind the ``DepthEstimator`` protocol.

Conversions happen here, once, on the model's device (no PIL / numpy round trip):
- our image (H, W, 3) in [0, 1] -> (1, 3, h, w) normalised with the model's mean/std;
- size: the model's input size with its aspect-ratio rule, rounded to its patch multiple
  (14 for Depth Anything, 32 for ZoeDepth / DPT), read from the model's own preprocessor config;
- ZoeDepth's reflect padding (its processor pads by int(sqrt(H/2)*3) px per side to fix border
  artefacts) is added before and cropped after;
- the prediction is resized back to (H, W) (bicubic, clamped to the predicted range so bicubic
  overshoot cannot make depth negative) and returned with its kind (metric / disparity).

``reference_preprocess`` runs the transformers PIL processor instead: the slow, obviously-correct
twin that tests compare ``preprocess`` against.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..geometry.cameras import Cameras
from .base import DepthKind, DepthPrediction, check_image
from .loading import LoadedDepthNetwork, ModelLoadConfig, load_depth_network
from .config import DepthNetworkConfig

_PIL_RESAMPLE_TO_MODE = {2: "bilinear", 3: "bicubic"}  # PIL.Image.Resampling codes


@dataclass(frozen=True)
class DepthInputSpec:
    """How a depth network wants its input (read from its image-processor config).

    size: target (height, width) before the aspect-ratio rule.
    keep_aspect_ratio: scale both sides by the factor closest to 1 (as transformers does).
    multiple: output sides are rounded to a multiple of this (patch size).
    mean, std: per-channel normalisation of [0, 1] values.
    mode: interpolation for the input resize ("bilinear" | "bicubic").
    align_corners: ZoeDepth resizes with align_corners=True, DPT/Depth Anything (PIL) without.
    reflect_pad: ZoeDepth's border padding (pad = int(sqrt(side / 2) * 3) per side).
    """

    size: tuple[int, int]
    keep_aspect_ratio: bool
    multiple: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    mode: str
    align_corners: bool
    reflect_pad: bool

    @staticmethod
    def from_processor(processor, model_type: str) -> "DepthInputSpec":
        """Read the settings of a transformers ``ZoeDepthImageProcessorPil`` / ``DPTImageProcessorPil``."""
        size = processor.size
        height, width = (size["height"], size["width"]) if "height" in size else (size["shortest_edge"],) * 2
        multiple = processor.ensure_multiple_of if processor.do_resize else 1
        # transformers' ZoeDepth default is the odd 1/32; any multiple below 1 means "no rounding"
        multiple = max(1, int(round(multiple))) if multiple >= 1 else 1
        return DepthInputSpec(
            size=(int(height), int(width)),
            keep_aspect_ratio=bool(processor.keep_aspect_ratio),
            multiple=multiple,
            mean=tuple(float(v) for v in processor.image_mean) if processor.do_normalize else (0.0, 0.0, 0.0),
            std=tuple(float(v) for v in processor.image_std) if processor.do_normalize else (1.0, 1.0, 1.0),
            mode=_PIL_RESAMPLE_TO_MODE.get(int(processor.resample), "bilinear"),
            align_corners=model_type == "zoedepth",
            reflect_pad=model_type == "zoedepth" and bool(getattr(processor, "do_pad", False)),
        )


def _round_to_multiple(value: float, multiple: int) -> int:
    """Nearest multiple (at least one multiple), the rule of transformers' DPT/ZoeDepth processors."""
    x = int(round(value / multiple)) * multiple
    return x if x > 0 else math.ceil(value / multiple) * multiple


def network_input_size(height: int, width: int, spec: DepthInputSpec) -> tuple[int, int]:
    """(h, w) the network sees for an (height, width) input (after any padding)."""
    scale_h, scale_w = spec.size[0] / height, spec.size[1] / width
    if spec.keep_aspect_ratio:
        # scale as little as possible: the factor closer to 1 wins (as in transformers)
        scale_h = scale_w = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
    return _round_to_multiple(scale_h * height, spec.multiple), _round_to_multiple(scale_w * width, spec.multiple)


def zoe_padding(height: int, width: int) -> tuple[int, int]:
    """ZoeDepth's reflect padding (rows, cols) per side for an input of this size."""
    return int(math.sqrt(height / 2) * 3), int(math.sqrt(width / 2) * 3)


def preprocess(image: Tensor, spec: DepthInputSpec, dtype: torch.dtype) -> Tensor:
    """(H, W, 3) in [0, 1] -> pixel_values (1, 3, h, w) for the network, on image's device."""
    x = image.float().permute(2, 0, 1).unsqueeze(0)                   # (1, 3, H, W)
    if spec.reflect_pad:
        ph, pw = zoe_padding(x.shape[-2], x.shape[-1])
        x = F.pad(x, (pw, pw, ph, ph), mode="reflect")
    size = network_input_size(x.shape[-2], x.shape[-1], spec)
    align = spec.align_corners
    # clamp: bicubic overshoot would leave [0, 1]; the reference (uint8 PIL) clips there too
    x = F.interpolate(x, size=size, mode=spec.mode, align_corners=align, antialias=not align).clamp(0, 1)
    mean = torch.tensor(spec.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).to(dtype)


def reference_preprocess(image: Tensor, processor) -> Tensor:
    """The transformers PIL-backend preprocessing of the same image (slow reference, CPU)."""
    import numpy as np

    array = (image.detach().float().clamp(0, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
    return processor(images=array, return_tensors="pt")["pixel_values"]


def postprocess(predicted: Tensor, out_size: tuple[int, int], spec: DepthInputSpec) -> Tensor:
    """Network output (1, h, w) -> (H, W) float32 at the input image size, padding removed."""
    d = predicted.float().unsqueeze(1)                                 # (1, 1, h, w)
    lo, hi = d.amin(), d.amax()
    ph, pw = zoe_padding(*out_size) if spec.reflect_pad else (0, 0)
    d = F.interpolate(d, size=(out_size[0] + 2 * ph, out_size[1] + 2 * pw), mode="bicubic", align_corners=False)
    d = d[..., ph:ph + out_size[0], pw:pw + out_size[1]]
    return d[0, 0].clamp(lo, hi)                                       # no bicubic overshoot


def depth_kind_of(model) -> DepthKind:
    """What the model's output means, from its config."""
    model_type = model.config.model_type
    if model_type == "zoedepth":
        return DepthKind.METRIC
    if model_type == "depth_anything" and getattr(model.config, "depth_estimation_type", "relative") == "metric":
        return DepthKind.METRIC
    return DepthKind.DISPARITY  # relative Depth Anything and DPT predict affine-invariant inverse depth


class TransformersDepthEstimator:
    """``DepthEstimator`` over a transformers depth network (ZoeDepth, Depth Anything, DPT)."""

    def __init__(self, network: LoadedDepthNetwork, config: DepthNetworkConfig = DepthNetworkConfig(),
                 label: str | None = None):
        self.network = network
        self.config = config
        self.spec = DepthInputSpec.from_processor(network.processor, network.model_type)
        self.kind = config.kind or depth_kind_of(network.model)
        self.label = label or network.source.display_name

    @classmethod
    def load(cls, ref: str | os.PathLike, load_config: ModelLoadConfig,
                        config: DepthNetworkConfig = DepthNetworkConfig()) -> "TransformersDepthEstimator":
        """Load ``ref`` (preset name, hub id or folder) through ``priors.loading``."""
        return cls(load_depth_network(ref, load_config), config)

    @torch.no_grad()
    def estimate(self, image: Tensor, camera: Cameras | None = None) -> DepthPrediction:
        """image (H, W, 3) in [0, 1] -> DepthPrediction(values (H, W) float32 on image's device, kind).

        METRIC values are z-depth in metres; DISPARITY values are inverse depth up to scale and
        shift. The camera is ignored (these networks do not take intrinsics).
        """
        check_image(image, self.label, "depth image")
        model = self.network.model
        param = next(model.parameters())
        pixels = preprocess(image.to(param.device), self.spec, param.dtype)
        predicted = model(pixel_values=pixels).predicted_depth         # (1, h, w)
        if self.config.flip_average:
            flipped = model(pixel_values=pixels.flip(-1)).predicted_depth
            predicted = 0.5 * (predicted + flipped.flip(-1))
        values = postprocess(predicted, (int(image.shape[0]), int(image.shape[1])), self.spec)
        return DepthPrediction(values.to(image.device), self.kind)
