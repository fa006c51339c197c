"""The render adapter: rendered 3D information -> multi-scale residuals for a frozen diffusion UNet.

T2I-Adapter style (Mou et al. 2023): a small convolutional network reads the render of the
current scene (colour, normalised disparity, opacity and the rendered feature map), and produces
one residual per UNet down block. diffusers' ``UNet2DConditionModel`` adds them through
``unet(..., down_intrablock_additional_residuals=[...])``:

- a cross-attention down block adds its residual after its last resnet/attention pair, *before*
  its downsampler (so at the block's input resolution);
- a plain down block adds it to the block's output, *after* its downsampler (if any).

``residual_specs`` reads those rules off the UNet's actual blocks, so the adapter lines up with
any SD-family UNet (SD 1.x/2.x layout, the tiny test UNets, an SDXL-like layout).

Decisions where T2I-Adapter differs (see docs/design/refinement.md):
- hidden widths are a fraction of the UNet's (``base_channels``), with a 1x1 projection to the
  UNet's width per scale, so the adapter stays small (test-time training);
- the projections are zero-initialised (as ControlNet's zero convolutions), so an untrained
  adapter leaves the frozen UNet's prediction exactly unchanged.

Layouts: this module works in (B, C, H, W), the priors-internal layout; ``adapter_input`` takes
the channels-last tensors of one view and returns (1, C, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from ..errors import UserInputError
from .config import AdapterConfig


@dataclass(frozen=True)
class ResidualSpec:
    """Shape of the residual one UNet down block receives.

    channels: the block's output channels. downscale: image pixels per residual pixel
    (VAE factor x UNet downsampling so far), i.e. residual H = image H / downscale.
    """

    channels: int
    downscale: int


NON_FEATURE_CHANNELS = 5
"""Adapter input channels before the features: RGB (3), normalised disparity (1), opacity (1)."""


def residual_specs(unet: nn.Module, vae_scale_factor: int) -> list[ResidualSpec]:
    """One ResidualSpec per down block of a diffusers UNet2DConditionModel, in injection order.

    unet: the (frozen) UNet; only its ``down_blocks`` structure is read.
    vae_scale_factor: image pixels per latent pixel (8 for SD).
    """
    specs = []
    factor = vae_scale_factor
    for block in unet.down_blocks:
        channels = block.resnets[-1].out_channels
        downsamples = getattr(block, "downsamplers", None) is not None
        if getattr(block, "has_cross_attention", False):
            specs.append(ResidualSpec(channels, factor))          # added before the downsampler
        else:
            specs.append(ResidualSpec(channels, factor * 2 if downsamples else factor))  # after it
        if downsamples:
            factor *= 2
    return specs


def required_multiple(specs: Sequence[ResidualSpec], vae_scale_factor: int) -> int:
    """Image side multiple (pixels) that every scale of the UNet and the adapter divides exactly."""
    return max([vae_scale_factor] + [s.downscale for s in specs])


def normalised_disparity(depth: Tensor, near_quantile: float) -> Tensor:
    """Scale-free inverse depth of a render: near / depth clipped to [0, 1], 0 where empty.

    depth: (H, W) z-depth in scene units, 0 (or less) where the render is empty.
    near_quantile: quantile of the valid depths taken as 'near' (robust to a few close floaters).
    Returns (H, W) float32. Multiplying ``depth`` by any positive scale leaves it unchanged, so
    the adapter sees the same input whatever the scene's units.
    """
    valid = depth > 0
    if not bool(valid.any()):
        return torch.zeros_like(depth, dtype=torch.float32)
    values = depth[valid].float()
    # nearest-rank quantile (kthvalue has no size limit; torch.quantile stops at 2^24 elements)
    near = values.kthvalue(1 + int(near_quantile * (values.numel() - 1))).values
    disparity = torch.where(valid, near / depth.float().clamp_min(torch.finfo(torch.float32).tiny),
                            torch.zeros((), device=depth.device))
    return disparity.clamp(0.0, 1.0)


def adapter_input(rgb: Tensor, depth: Tensor, opacity: Tensor, features: Tensor,
                  near_quantile: float) -> Tensor:
    """Stack one view's render into the adapter's input (1, 5 + F, H, W), float32.

    rgb: (H, W, 3) in [0, 1] -> mapped to [-1, 1]. depth: (H, W) z-depth, 0 where empty ->
    normalised disparity in [0, 1]. opacity: (H, W) in [0, 1]. features: (H, W, F), as rendered.
    """
    channels = [rgb.float() * 2.0 - 1.0,
                normalised_disparity(depth, near_quantile)[..., None],
                opacity.float()[..., None],
                features.float()]
    return torch.cat(channels, dim=-1).permute(2, 0, 1)[None]


class _ResBlock(nn.Module):
    """conv3x3 -> SiLU -> conv3x3, plus the input (no normalisation, as T2I-Adapter)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class RenderAdapter(nn.Module):
    """Render (B, C_in, H, W) -> list of residuals, one per ResidualSpec (B, c_k, H/d_k, W/d_k).

    in_channels: 5 + F (see ``adapter_input``). specs: from ``residual_specs(unet, ...)``.
    vae_scale_factor: the first step is a pixel-unshuffle by this factor (to latent resolution).
    H and W must be multiples of ``required_multiple(specs, vae_scale_factor)``.
    """

    def __init__(self, in_channels: int, specs: Sequence[ResidualSpec], vae_scale_factor: int,
                 config: AdapterConfig):
        super().__init__()
        if not specs:
            raise ValueError("RenderAdapter needs at least one residual spec")
        self.in_channels = in_channels
        self.specs = tuple(specs)
        self.vae_scale_factor = vae_scale_factor
        self.unshuffle = nn.PixelUnshuffle(vae_scale_factor)
        widths = [max(1, config.base_channels * s.channels // specs[0].channels) for s in specs]
        self.conv_in = nn.Conv2d(in_channels * vae_scale_factor ** 2, widths[0], 3, padding=1)
        self.downs = nn.ModuleList()
        self.bodies = nn.ModuleList()
        self.projections = nn.ModuleList()
        previous_width, previous_scale = widths[0], vae_scale_factor
        for spec, width in zip(specs, widths):
            steps = _halvings(previous_scale, spec.downscale)
            layers: list[nn.Module] = []
            for i in range(steps):   # stride-2 convs down to this spec's resolution
                layers.append(nn.Conv2d(previous_width if i == 0 else width, width, 3, stride=2, padding=1))
            if steps == 0 and previous_width != width:
                layers.append(nn.Conv2d(previous_width, width, 1))
            self.downs.append(nn.Sequential(*layers))
            self.bodies.append(nn.Sequential(*[_ResBlock(width) for _ in range(config.res_blocks_per_scale)]))
            projection = nn.Conv2d(width, spec.channels, 1)
            if config.zero_init:
                nn.init.zeros_(projection.weight)
                nn.init.zeros_(projection.bias)
            self.projections.append(projection)
            previous_width, previous_scale = width, spec.downscale

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.conv_in(self.unshuffle(x))                        # (B, w0, H/v, W/v)
        residuals = []
        for down, body, projection in zip(self.downs, self.bodies, self.projections):
            x = body(down(x))                                      # (B, w_k, H/d_k, W/d_k)
            residuals.append(projection(x))                        # (B, c_k, H/d_k, W/d_k)
        return residuals


def _halvings(from_scale: int, to_scale: int) -> int:
    """Number of x2 downsamplings from one pixel scale to another (both powers-of-two multiples)."""
    steps, scale = 0, from_scale
    while scale < to_scale:
        scale *= 2
        steps += 1
    if scale != to_scale:
        raise ValueError(f"adapter scales must grow by powers of two ({from_scale} -> {to_scale})")
    return steps


def check_adapter_metadata(saved: dict[str, str], expected: dict[str, str], path: str) -> None:
    """Raise UserInputError naming the first field where a saved adapter does not fit this one."""
    for key, value in expected.items():
        if saved.get(key) != value:
            raise UserInputError(f"{path}: adapter does not fit this refiner ({key} is "
                                 f"{saved.get(key)!r} in the file, {value!r} here)")
