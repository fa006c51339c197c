"""Stable Diffusion text-to-image and inpainting behind the ``TextToImage`` / ``Inpainter`` protocols.

Conversions happen here, once:
- images: ours (H, W, 3) float32 in [0, 1]  <->  diffusers (1, 3, H, W) in [0, 1] (diffusers maps
  to [-1, 1] for the VAE itself);
- mask polarity: our ``inpaint`` (True = generate) is diffusers' white = repaint, so it maps to a
  float mask 1.0 where ``inpaint``;
- size: the network works at a multiple of 8 px (the VAE downsamples by 8); other sizes are
  resized to the nearest multiple (or to ``working_long_side``) and the result resized back;
- known pixels: inpainting returns them bit-exactly; the generated content is pasted into the
  hole with a feathered colour-offset correction (see ``paste_back``) so the seam does not show.

Weights are loaded by ``priors.loading`` only; the wrappers take a ready pipeline (tests inject
tiny random pipelines).
"""

from __future__ import annotations

import logging
import os
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UserInputError
from ..geometry.cameras import Cameras
from .base import check_image
from .filters import box_mean_zero_padded
from .loading import ModelLoadConfig, load_sd_pipeline
from .config import DiffusionConfig

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# value / size conversions (pure functions)
# --------------------------------------------------------------------------------------------

def network_size(height: int, width: int, config: DiffusionConfig) -> tuple[int, int]:
    """(height, width) the network runs at: rescaled to ``working_long_side`` if set, then rounded
    to the nearest multiple of ``size_multiple`` (at least one multiple)."""
    scale = 1.0 if config.working_long_side is None else config.working_long_side / max(height, width)
    m = config.size_multiple
    return (max(m, int(round(height * scale / m)) * m), max(m, int(round(width * scale / m)) * m))


def to_network_image(image: Tensor, size: tuple[int, int]) -> Tensor:
    """(H, W, 3) in [0, 1] -> (1, 3, h, w) in [0, 1] at ``size`` (bilinear, antialiased)."""
    x = image.permute(2, 0, 1).unsqueeze(0)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    return x


def from_network_image(x: Tensor, size: tuple[int, int]) -> Tensor:
    """(1, 3, h, w) in [0, 1] -> (H, W, 3) float32 in [0, 1] at ``size``."""
    x = x.float()
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x[0].permute(1, 2, 0).clamp(0, 1).contiguous()


def to_network_mask(inpaint: Tensor, size: tuple[int, int]) -> Tensor:
    """(H, W) bool ``inpaint`` -> (1, 1, h, w) float, 1.0 = repaint (diffusers' polarity).

    Resizing is conservative: a network pixel is repainted when any of the input pixels it
    covers must be (area average > 0), so no hole pixel is lost at lower resolution.
    """
    m = inpaint.float()[None, None]
    if tuple(m.shape[-2:]) != tuple(size):
        m = (F.interpolate(m, size=size, mode="area" if size[0] <= m.shape[-2] else "bilinear") > 0).float()
    return m


def truncate_prompt(prompt: str, tokenizer, model_label: str) -> str:
    """The prompt cut to what the text encoder takes, with a warning naming the model if cut.

    The limit is ``tokenizer.model_max_length`` tokens including the start/end tokens (77 for
    CLIP). Cutting here (instead of letting diffusers do it) makes the warning say which model.
    """
    limit = int(tokenizer.model_max_length)
    ids = tokenizer(prompt, truncation=False, add_special_tokens=True)["input_ids"]
    if len(ids) <= limit:
        return prompt
    # Cut by token ids and decode without skip_special_tokens: the SD 2 tokenizer's pad token is
    # "!", so skipping special tokens would drop every "!" of the prompt (issue 12). The slices
    # hold no start/end token (ids[0] is the start token, the end token is the last id).
    kept = tokenizer.decode(ids[1:limit - 1], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    dropped = tokenizer.decode(ids[limit - 1:-1], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    warnings.warn(f"{model_label}: prompt is {len(ids)} tokens, the text encoder takes {limit}; "
                  f"cut {len(ids) - limit} tokens: {dropped!r}", stacklevel=3)
    return kept


def _dilate(mask: Tensor, px: int) -> Tensor:
    """Binary dilation of a (H, W) bool mask by ``px`` pixels (square structuring element).

    Separable: a (2px+1) column max then a row max equals the square max, at 2(2px+1) ops/pixel.
    """
    if px <= 0:
        return mask
    k = 2 * px + 1
    m = F.max_pool2d(mask.float()[None, None], (k, 1), stride=1, padding=(px, 0))
    return F.max_pool2d(m, (1, k), stride=1, padding=(0, px))[0, 0] > 0


def _distance_inside(inpaint: Tensor, max_px: int) -> Tensor:
    """(H, W) float: chessboard distance in pixels from each inpaint pixel to the nearest known
    pixel, capped at ``max_px`` (0 on known pixels). Computed by repeated erosion."""
    dist = torch.zeros(inpaint.shape, dtype=torch.float32, device=inpaint.device)
    current = inpaint.clone()
    for step in range(1, max_px + 1):
        dist[current] = float(step)
        known = ~current
        current = current & ~_dilate(known, 1)
        if not current.any():
            break
    return dist


def paste_back(original: Tensor, generated: Tensor, inpaint: Tensor, feather_px: int) -> Tensor:
    """Known pixels from ``original`` exactly; hole pixels from ``generated`` with a feathered seam.

    original, generated: (H, W, 3) in [0, 1]; inpaint: (H, W) bool (True = generated content).
    The colour offset ``original - generated`` measured on the known ring around the hole is
    spread into the hole and faded out linearly over ``feather_px`` pixels, so the generated
    content meets the known pixels without a visible step; deeper inside it is untouched.
    """
    out = torch.where(inpaint[..., None], generated, original)
    if feather_px <= 0 or not inpaint.any() or inpaint.all():
        return out
    ring = _dilate(inpaint, feather_px) & ~inpaint                               # (H, W) known pixels near the hole
    offset = (original - generated) * ring[..., None]                           # (H, W, 3)
    weight_sum = box_mean_zero_padded(ring.float()[None, None], feather_px)[0, 0]
    offset_sum = box_mean_zero_padded(offset.permute(2, 0, 1)[None], feather_px)[0]
    spread = (offset_sum / weight_sum.clamp_min(1e-6)).permute(1, 2, 0)         # mean offset nearby
    fade = (1.0 - (_distance_inside(inpaint, feather_px + 1) - 1.0) / feather_px).clamp(0, 1)
    fade = fade * inpaint * (weight_sum > 0)                                     # only inside the hole
    corrected = (generated + fade[..., None] * spread).clamp(0, 1)
    return torch.where(inpaint[..., None], corrected, original)


def configure_sampler(pipeline, sampler: str) -> None:
    """Replace ``pipeline.scheduler`` by the ``sampler`` of DiffusionConfig, built from the
    pipeline's own scheduler config (same noise schedule and prediction type)."""
    if sampler == "default":
        return
    from diffusers import DPMSolverMultistepScheduler, LCMScheduler

    config = pipeline.scheduler.config
    if sampler == "lcm":
        pipeline.scheduler = LCMScheduler.from_config(config)
    elif sampler == "dpm-solver++":
        pipeline.scheduler = DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++",
                                                                     solver_order=2)
    else:
        raise UserInputError(f"priors.diffusion.sampler: {sampler!r} is not one of default, lcm, dpm-solver++")


# --------------------------------------------------------------------------------------------
# the wrappers
# --------------------------------------------------------------------------------------------

class StableDiffusionTextToImage:
    """``TextToImage`` over a diffusers ``StableDiffusionPipeline`` (SD 1.x / 2.x).

    pipeline: a loaded pipeline (``priors.loading.load_sd_pipeline``); config: sampling settings.
    The camera only gives the output size; real networks ignore its pose.
    """

    def __init__(self, pipeline, config: DiffusionConfig = DiffusionConfig(), label: str = "stable-diffusion"):
        self.pipeline = pipeline
        self.config = config
        self.label = label

    @classmethod
    def load(cls, ref: str | os.PathLike, load_config: ModelLoadConfig,
                        config: DiffusionConfig = DiffusionConfig()) -> "StableDiffusionTextToImage":
        """Load ``ref`` (preset name, hub id or folder) through ``priors.loading``."""
        return cls(load_sd_pipeline(ref, load_config, inpainting=False), config, label=str(ref))

    @torch.no_grad()
    def generate(self, prompt: str, camera: Cameras, generator: torch.Generator) -> Tensor:
        """Image (H, W, 3) float32 in [0, 1] at camera.height x camera.width, on the pipeline's
        execution device. Same prompt, size and generator state -> same image."""
        out_size = (int(camera.height), int(camera.width))
        net_h, net_w = network_size(*out_size, self.config)
        prompt = truncate_prompt(prompt, self.pipeline.tokenizer, self.label)
        result = self.pipeline(prompt, height=net_h, width=net_w,
                               num_inference_steps=self.config.num_inference_steps,
                               guidance_scale=self.config.guidance_scale,
                               negative_prompt=self.config.negative_prompt or None,
                               generator=generator, output_type="pt")
        return from_network_image(result.images, out_size)


class StableDiffusionInpainter:
    """``Inpainter`` over a diffusers ``StableDiffusionInpaintPipeline`` (SD 1.5 / 2 inpainting).

    Known pixels (``~inpaint``) are returned exactly; see ``paste_back`` for the seam.
    """

    def __init__(self, pipeline, config: DiffusionConfig = DiffusionConfig(), label: str = "stable-diffusion-inpaint"):
        self.pipeline = pipeline
        self.config = config
        self.label = label

    @classmethod
    def load(cls, ref: str | os.PathLike, load_config: ModelLoadConfig,
                        config: DiffusionConfig = DiffusionConfig()) -> "StableDiffusionInpainter":
        """Load ``ref`` (preset name, hub id or folder) through ``priors.loading``."""
        return cls(load_sd_pipeline(ref, load_config, inpainting=True), config, label=str(ref))

    @torch.no_grad()
    def inpaint(self, image: Tensor, inpaint: Tensor, prompt: str, generator: torch.Generator,
                camera: Cameras | None = None) -> Tensor:
        """image (H, W, 3) in [0, 1], inpaint (H, W) bool (True = generate) -> (H, W, 3) float32.

        Pixels where ``inpaint`` is False equal the input bit for bit. An all-False mask is a
        UserInputError (nothing to do is almost always a caller bug); the camera is ignored.
        """
        check_image(image, self.label, "inpaint image")
        if inpaint.shape != image.shape[:2] or inpaint.dtype != torch.bool:
            raise UserInputError(f"inpaint mask: expected bool (H, W) = {tuple(image.shape[:2])}, "
                                 f"got {inpaint.dtype} {tuple(inpaint.shape)}")
        if not inpaint.any():
            raise UserInputError("inpaint mask is empty: no pixel to inpaint")
        image = image.float()
        out_size = (int(image.shape[0]), int(image.shape[1]))
        net_size = network_size(*out_size, self.config)
        net_image = to_network_image(image.clamp(0, 1), net_size)
        net_mask = to_network_mask(inpaint, net_size)
        prompt = truncate_prompt(prompt, self.pipeline.tokenizer, self.label)
        result = self.pipeline(prompt, image=net_image, mask_image=net_mask, height=net_size[0],
                               width=net_size[1], strength=1.0,
                               num_inference_steps=self.config.num_inference_steps,
                               guidance_scale=self.config.guidance_scale,
                               negative_prompt=self.config.negative_prompt or None,
                               generator=generator, output_type="pt")
        generated = from_network_image(result.images, out_size).to(image.device)
        return paste_back(image, generated, inpaint.to(image.device), self.config.seam_feather_px)
