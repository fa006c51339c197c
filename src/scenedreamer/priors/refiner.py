"""3D-aware generative refinement (docs/method.md (c), (d)): a frozen diffusion model + a trained adapter.

For the next camera the scene's render (colour, depth, opacity, features) is corrected by a
frozen Stable Diffusion model; the render's 3D information enters the UNet through the
``RenderAdapter`` (multi-scale residuals). Only the adapter is trained, at test time, on the
support database (render at a database camera -> adapter -> denoising loss toward the database
image). Local consistency regularisation: the frame made the local way (warp of neighbouring
support views + inpaint) guides denoising on the pixels the warp knows.

``refine`` reads top to bottom as:
  fill the render's holes with the local frame -> VAE-encode -> noise to ``strength`` ->
  denoise with adapter residuals, blending the known region toward the noised local frame ->
  decode -> paste the well-observed render pixels back with a feathered seam.

Priors never import the representation: everything here takes plain tensors. Images are
float32 (H, W, 3) in [0, 1] at this interface; [-1, 1] and (B, C, H, W) only inside.
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..atomic import atomic_write_bytes
from ..errors import InternalError, UserInputError
from ..events import EventSink, emit
from .adapter import (NON_FEATURE_CHANNELS, RenderAdapter, adapter_input,
                      check_adapter_metadata, required_multiple, residual_specs)
from .config import RefinerConfig

ADAPTER_FORMAT = "scenedreamer-render-adapter/1"
"""Format tag written into saved adapter files (safetensors metadata)."""


# ----------------------------------------------------------------------------- the interface
@dataclass(frozen=True)
class RefinerInput:
    """One view to refine, plain tensors, channels-last, all on one device.

    rendered_rgb: (H, W, 3) in [0, 1], the render composited over BLACK (premultiplied by
        opacity; the representation's default background).
    rendered_depth: (H, W) z-depth in scene units, 0 where empty.
    opacity: (H, W) accumulated alpha in [0, 1].
    features: (H, W, F) rendered 3D features (F may be 0).
    local_rgb: (H, W, 3) in [0, 1], the local frame (warp of support views + inpaint), complete.
    local_known: (H, W) bool, True where the warp knows the pixel (not inpainted).
    local_depth: optional (H, W) z-depth of the warp, 0 where unknown. When given, rendered
        pixels whose depth disagrees with it (floaters) are not trusted.
    """

    rendered_rgb: Tensor
    rendered_depth: Tensor
    opacity: Tensor
    features: Tensor
    local_rgb: Tensor
    local_known: Tensor
    local_depth: Tensor | None = None

    def __post_init__(self) -> None:
        rgb = self.rendered_rgb
        if rgb.ndim != 3 or rgb.shape[-1] != 3:
            raise InternalError(f"RefinerInput.rendered_rgb: expected (H, W, 3), got {tuple(rgb.shape)}")
        hw = tuple(rgb.shape[:2])
        checks = [("rendered_depth", self.rendered_depth, hw), ("opacity", self.opacity, hw),
                  ("local_rgb", self.local_rgb, hw + (3,)), ("local_known", self.local_known, hw)]
        if self.local_depth is not None:
            checks.append(("local_depth", self.local_depth, hw))
        for name, tensor, shape in checks:
            if tuple(tensor.shape) != shape:
                raise InternalError(f"RefinerInput.{name}: expected {shape}, got {tuple(tensor.shape)}")
        if self.features.ndim != 3 or tuple(self.features.shape[:2]) != hw:
            raise InternalError(f"RefinerInput.features: expected {hw + ('F',)}, "
                                 f"got {tuple(self.features.shape)}")
        if self.local_known.dtype != torch.bool:
            raise InternalError(f"RefinerInput.local_known: expected a bool mask, got {self.local_known.dtype}")

    @property
    def height(self) -> int:
        return int(self.rendered_rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rendered_rgb.shape[1])

    @property
    def feature_channels(self) -> int:
        return int(self.features.shape[-1])


@runtime_checkable
class Refiner(Protocol):
    """Corrects a render of the scene at a new camera into a clean, consistent image."""

    label: str  # human name; the offline stand-in says so
    adapter: torch.nn.Module | None
    """the trainable adapter on the refiner's input (method §3.3); None when there is none"""

    def refine(self, view: RefinerInput, prompt: str, generator: torch.Generator) -> Tensor:
        """Refined image (H, W, 3) in [0, 1], float32, on the view's device."""
        ...

    def train_adapter(self, batches: Iterable[tuple[RefinerInput, Tensor]], steps: int,
                      generator: torch.Generator, on_event: EventSink | None = None,
                      prompt: str = "") -> dict[str, float]:
        """Train the adapter for ``steps`` steps on (render at a database camera, database image
        (H, W, 3) in [0, 1]) pairs; returns final metrics ({} when there is nothing to train)."""
        ...

    def save_adapter(self, path: str | Path) -> None:
        """Write the adapter to ``path`` atomically."""
        ...

    def load_adapter(self, path: str | Path) -> None:
        """Read an adapter written by ``save_adapter``; UserInputError if it does not fit."""
        ...

    def training_state(self) -> dict[str, Any] | None:
        """The adapter's weights and optimiser moments for a step checkpoint; None without an
        adapter."""
        ...

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore what ``training_state`` returned; UserInputError if it does not fit."""
        ...


# ----------------------------------------------------------------------------- training helpers
def training_crop(x: Tensor, z0: Tensor, side: int, multiple: int, vae_scale: int,
                  generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """One random square crop of an adapter training batch, the same place in both tensors.

    x: (B, C, H, W) adapter input in image pixels; z0: (B, 4, H / vae_scale, W / vae_scale) the
    views' latents. ``side`` and every crop origin are multiples of ``multiple`` (image pixels),
    itself a multiple of ``vae_scale``, so the crop of z0 is exactly the latents under the crop
    of x and the adapter's strided residuals line up with the UNet's. A side of the views that is
    not longer than ``side`` is kept whole. Returns (x crop, z0 crop)."""
    height, width = x.shape[-2:]
    crops = []
    for extent in (height, width):
        if extent <= side:
            crops.append((0, extent))
            continue
        origin = multiple * int(torch.randint((extent - side) // multiple + 1, (1,), generator=generator,
                                              device=generator.device))
        crops.append((origin, side))
    (top, h), (left, w) = crops
    x = x[..., top:top + h, left:left + w]
    z0 = z0[..., top // vae_scale:(top + h) // vae_scale, left // vae_scale:(left + w) // vae_scale]
    return x, z0


# ----------------------------------------------------------------------------- compositing helpers
def floater_mask(view: RefinerInput, relative_tolerance: float) -> Tensor:
    """(H, W) bool: rendered pixels whose depth disagrees with the warp's by more than the tolerance.

    Only pixels where both depths exist count (rendered_depth > 0, local_known, local_depth > 0);
    all False when the view has no local_depth. Disagreement is |d_render - d_local| / d_local.
    """
    if view.local_depth is None:
        return torch.zeros_like(view.local_known)
    both = (view.rendered_depth > 0) & view.local_known & (view.local_depth > 0)
    relative = (view.rendered_depth - view.local_depth).abs() / view.local_depth.clamp_min(1e-12)
    return both & (relative > relative_tolerance)


def render_over_local(view: RefinerInput, floaters: Tensor) -> Tensor:
    """(H, W, 3) the premultiplied render composited over the local frame; floaters -> local frame.

    The render's holes (low opacity) are filled with the local frame's colour: rgb + (1 - a) * local.
    """
    alpha = view.opacity.float().clamp(0.0, 1.0)[..., None]
    over = view.rendered_rgb.float() + (1.0 - alpha) * view.local_rgb.float()
    return torch.where(floaters[..., None], view.local_rgb.float(), over).clamp(0.0, 1.0)


def feather_alpha(keep: Tensor, feather_px: int) -> Tensor:
    """(H, W) float32 blend weight: 1 on ``keep``, falling linearly to 0 over ``feather_px`` pixels.

    alpha = max(0, 1 - d / (feather_px + 1)) with d the chessboard distance (pixels) to the
    nearest ``keep`` pixel. Torch path (stays on the view's device, GPU included): repeated 3x3
    max-pooling, one per pixel of distance; ``feather_alpha_reference`` is its obviously-correct
    twin (scipy distance transform, CPU only).
    """
    alpha = keep.float()
    if feather_px <= 0 or not bool(keep.any()):
        return alpha
    grown = alpha[None, None]
    out = grown.clone()
    for distance in range(1, feather_px + 1):
        grown = F.max_pool2d(grown, kernel_size=3, stride=1, padding=1)   # pixels within `distance`
        out = torch.maximum(out, grown * (1.0 - distance / (feather_px + 1)))
    return out[0, 0]


def feather_alpha_reference(keep: Tensor, feather_px: int) -> Tensor:
    """Slow, obviously-correct twin of ``feather_alpha`` (scipy chessboard distance transform)."""
    import numpy as np
    from scipy.ndimage import distance_transform_cdt

    keep_np = keep.cpu().numpy()
    if feather_px <= 0 or not keep_np.any():
        return keep.float()
    distance = distance_transform_cdt(~keep_np, metric="chessboard").astype(np.float64)
    alpha = np.clip(1.0 - distance / (feather_px + 1), 0.0, 1.0)
    return torch.from_numpy(alpha.astype(np.float32)).to(keep.device)


def paste_well_observed(refined: Tensor, view: RefinerInput, keep: Tensor, feather_px: int) -> Tensor:
    """Put the render back on ``keep`` pixels exactly, feathering into ``refined`` around them.

    refined: (H, W, 3) in [0, 1]. keep: (H, W) bool. Returns (H, W, 3) in [0, 1]; on ``keep``
    pixels the result equals ``view.rendered_rgb`` bit for bit.
    """
    alpha = feather_alpha(keep, feather_px)[..., None]
    rendered = view.rendered_rgb.float()
    blended = alpha * rendered + (1.0 - alpha) * refined
    return torch.where(keep[..., None], rendered, blended.clamp(0.0, 1.0))


# ----------------------------------------------------------------------------- configuration
# ----------------------------------------------------------------------------- the diffusion refiner
class DiffusionRefiner:
    """Refiner over an injected Stable Diffusion pipeline with a trainable render adapter.

    pipeline: a diffusers StableDiffusionPipeline (vae, text_encoder, tokenizer, unet, scheduler);
        its UNet, VAE and text encoder are moved to ``device``/``dtype``, frozen and put in eval
        mode (shared with other priors that use the same pipeline, which is fine: frozen).
    config: RefinerConfig. device/dtype: where the frozen models run (None: the pipeline's
        execution device / the UNet's dtype; a pipeline under model CPU offload is left as is).
        The adapter always keeps float32 parameters (it is trained); residuals are cast to dtype.
    label: human name (default from the pipeline's name_or_path).
    """

    def __init__(self, pipeline: Any, config: RefinerConfig = RefinerConfig(),
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                 label: str | None = None):
        self.config = config
        self.pipeline = pipeline
        self.unet, self.vae, self.text_encoder = pipeline.unet, pipeline.vae, pipeline.text_encoder
        if self.unet.config.in_channels != self.vae.config.latent_channels:
            raise UserInputError(f"refiner: the UNet takes {self.unet.config.in_channels} input channels; "
                                 "the refiner needs a text-to-image model, not an inpainting one")
        # Under model CPU offload (accelerate hooks) the models move to the GPU per call: leave
        # them where they are and compute on the pipeline's execution device.
        offloaded = any(hasattr(m, "_hf_hook") for m in (self.unet, self.vae, self.text_encoder))
        default_device = getattr(pipeline, "_execution_device", self.unet.device)
        self.device = torch.device(device) if device is not None else torch.device(default_device)
        self.dtype = dtype if dtype is not None and not offloaded else self.unet.dtype
        for model in (self.unet, self.vae, self.text_encoder):
            if not offloaded and (model.device != self.device or model.dtype != self.dtype):
                model.to(device=self.device, dtype=self.dtype)   # only when needed: diffusers warns
            model.requires_grad_(False)
            model.eval()
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.specs = residual_specs(self.unet, self.vae_scale_factor)
        self.multiple = required_multiple(self.specs, self.vae_scale_factor)
        crop = config.adapter.train_crop
        if crop % self.multiple:
            raise UserInputError(f"refiner.adapter.train_crop: {crop} is not a multiple of {self.multiple} px, "
                                 f"the stride of this UNet's deepest adapter residual (try {crop - crop % self.multiple or self.multiple})")
        self.adapter: RenderAdapter | None = None
        if config.use_adapter:
            with torch.random.fork_rng(devices=[]):      # seeded init, global RNG left untouched
                torch.manual_seed(config.adapter.init_seed)
                self.adapter = RenderAdapter(NON_FEATURE_CHANNELS + config.feature_channels, self.specs,
                                             self.vae_scale_factor, config.adapter)
            self.adapter.to(device=self.device, dtype=torch.float32).eval()
        self._optimizer: torch.optim.Optimizer | None = None
        name = getattr(getattr(pipeline, "config", None), "_name_or_path", "") or "stable diffusion"
        suffix = " + render adapter" if config.use_adapter else " (no adapter)"
        self.label = label or f"diffusion refiner: {name}{suffix}"

    # -- public API ------------------------------------------------------------------------------
    @torch.no_grad()
    def refine(self, view: RefinerInput, prompt: str, generator: torch.Generator) -> Tensor:
        """Refined image (H, W, 3) float32 in [0, 1] on the view's device; deterministic per generator
        state. Well-observed pixels (opacity >= keep_threshold, not floaters) are the render's exactly.
        """
        cfg = self.config
        self._check_features(view)
        floaters = floater_mask(view, cfg.floater_depth_tolerance)
        start_rgb = render_over_local(view, floaters) if cfg.fill_holes_with_local else view.rendered_rgb.float()

        z_start = self._encode(self._to_nchw(start_rgb))                    # (1, 4, h, w)
        z_local = self._encode(self._to_nchw(view.local_rgb.float()))       # (1, 4, h, w)
        known_latent = self._latent_mask(view.local_known)                  # (1, 1, h, w)
        text = self._text_embeddings(prompt, cfg.guidance_scale > 1.0)
        residuals = self._residuals(view)

        scheduler = self.pipeline.scheduler.__class__.from_config(self.pipeline.scheduler.config)
        scheduler.set_timesteps(cfg.num_inference_steps, device=self.device)
        timesteps = _img2img_timesteps(scheduler, cfg.num_inference_steps, cfg.strength)
        if len(timesteps) == 0:     # strength 0: nothing is redrawn
            refined_padded = self._to_nchw(start_rgb)
        else:
            noise = _randn(z_start.shape, generator, self.device, self.dtype)
            z = scheduler.add_noise(z_start, noise, timesteps[:1])
            guided_steps = math.ceil(len(timesteps) * cfg.consistency_steps_fraction)
            step_kwargs = _step_kwargs(scheduler, generator)
            for i, t in enumerate(timesteps):
                eps = self._predict_noise(scheduler, z, t, text, residuals)
                z = scheduler.step(eps, t, z, **step_kwargs).prev_sample
                if cfg.consistency_weight > 0 and i < guided_steps:
                    # RePaint/SDEdit-style guidance: the local frame at the noise level z now has.
                    reference = (scheduler.add_noise(z_local, noise, timesteps[i + 1: i + 2])
                                 if i + 1 < len(timesteps) else z_local)
                    z = z + cfg.consistency_weight * known_latent * (reference - z)
            refined_padded = self._decode(z)
        refined = self._from_nchw(refined_padded, view.height, view.width).to(view.rendered_rgb.device)

        keep = (view.opacity >= cfg.keep_threshold) & ~floaters
        return paste_well_observed(refined, view, keep, cfg.seam_feather_px)

    def train_adapter(self, batches: Iterable[tuple[RefinerInput, Tensor]], steps: int,
                      generator: torch.Generator, on_event: EventSink | None = None,
                      prompt: str = "") -> dict[str, float]:
        """Test-time training of the adapter with the frozen UNet's denoising loss.

        batches: (render at a database camera, database image (H, W, 3) in [0, 1]) pairs; they are
            read once into memory and drawn at random (with ``generator``) each step.
        steps: optimiser steps. prompt: the scene prompt the UNet is conditioned on.
        Loss: MSE between the UNet's prediction (with adapter residuals) and the scheduler's
        target (noise for epsilon models, velocity for v-prediction models such as SD 2 768).
        Returns {"loss": last step's loss, "loss_mean": mean over the steps, "steps": steps};
        {} when there is no adapter or ``steps`` is 0. Emits "adapter" progress events.
        """
        if self.adapter is None or steps <= 0:
            return {}
        pairs = list(batches)
        if not pairs:
            raise UserInputError("train_adapter: no (render, database image) pairs to train on")
        acfg = self.config.adapter
        inputs, targets = [], []
        with torch.no_grad():
            for view, image in pairs:
                self._check_features(view)
                if tuple(image.shape) != (view.height, view.width, 3):
                    raise UserInputError(f"train_adapter: database image {tuple(image.shape)} does not "
                                         f"match its render {(view.height, view.width, 3)}")
                inputs.append(self._adapter_input(view))
                targets.append(self._encode(self._to_nchw(image.float())))
            text = self._text_embeddings(prompt, False)                      # (1, L, D)
        if acfg.train_batch_size > 1 and len({tuple(x.shape) for x in inputs}) > 1:
            raise UserInputError("train_adapter: views of different sizes need adapter.train_batch_size 1")

        noise_scheduler = self._training_scheduler()
        max_t = max(1, int(acfg.train_timestep_fraction * noise_scheduler.config.num_train_timesteps))
        optimizer = self._get_optimizer()
        self.adapter.train()
        losses = []
        for step in range(steps):
            pick = torch.randint(len(pairs), (acfg.train_batch_size,), generator=generator,
                                 device=generator.device).tolist()
            x = torch.cat([inputs[i] for i in pick])                          # (B, 5+F, H, W)
            z0 = torch.cat([targets[i] for i in pick])                        # (B, 4, h, w)
            if acfg.train_crop:
                x, z0 = training_crop(x, z0, acfg.train_crop, self.multiple, self.vae_scale_factor, generator)
            t = torch.randint(max_t, (len(pick),), generator=generator, device=generator.device).to(self.device)
            noise = _randn(z0.shape, generator, self.device, self.dtype)
            z_t = noise_scheduler.add_noise(z0, noise, t)
            residuals = [r.to(self.dtype) * acfg.residual_scale for r in self.adapter(x)]
            prediction = self.unet(z_t, t, encoder_hidden_states=text.expand(len(pick), -1, -1),
                                   down_intrablock_additional_residuals=residuals).sample
            target = (noise_scheduler.get_velocity(z0, noise, t)
                      if noise_scheduler.config.prediction_type == "v_prediction" else noise)
            loss = F.mse_loss(prediction.float(), target.float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if acfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.adapter.parameters(), acfg.max_grad_norm)
            optimizer.step()
            losses.append(float(loss.detach()))
            emit(on_event, "adapter", step=step + 1, total=steps, message="adapter training", loss=losses[-1])
        self.adapter.eval()
        return {"loss": losses[-1], "loss_mean": sum(losses) / len(losses), "steps": float(steps)}

    def save_adapter(self, path: str | Path) -> None:
        """Write the adapter's weights to ``path`` (safetensors, atomic), with its shape as metadata."""
        from safetensors.torch import save

        if self.adapter is None:
            raise UserInputError(f"{path}: this refiner has no adapter to save (use_adapter is False)")
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.adapter.state_dict().items()}
        atomic_write_bytes(path, save(tensors, metadata=self._adapter_metadata()))

    def load_adapter(self, path: str | Path) -> None:
        """Read adapter weights saved by ``save_adapter``; UserInputError if missing or of another shape."""
        from safetensors import safe_open

        if self.adapter is None:
            raise UserInputError(f"{path}: this refiner has no adapter to load into (use_adapter is False)")
        path = Path(path)
        if not path.is_file():
            raise UserInputError(f"{path}: adapter file not found")
        try:
            with safe_open(str(path), framework="pt", device="cpu") as fh:
                metadata = fh.metadata() or {}
                check_adapter_metadata(metadata, self._adapter_metadata(), str(path))
                state = {key: fh.get_tensor(key) for key in fh.keys()}
        except UserInputError:
            raise
        except Exception as err:  # a truncated / foreign file: one line for the user
            raise UserInputError(f"{path}: not a readable adapter file ({err})") from None
        self.adapter.load_state_dict(state)
        self._optimizer = None    # optimiser moments belonged to the previous weights

    def training_state(self) -> dict[str, Any] | None:
        """Everything adapter training carries between calls (weights and AdamW moments), for a
        run's step checkpoint; None without an adapter. A run resumed from it trains on exactly
        as an uninterrupted one would."""
        if self.adapter is None:
            return None
        return {"adapter": {k: v.detach().cpu().clone() for k, v in self.adapter.state_dict().items()},
                "optimizer": self._optimizer.state_dict() if self._optimizer is not None else None}

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore what ``training_state`` returned (UserInputError if it does not fit)."""
        if self.adapter is None:
            raise UserInputError("refiner: this refiner has no adapter to restore (use_adapter is False)")
        try:
            self.adapter.load_state_dict(state["adapter"])
        except (KeyError, RuntimeError) as err:
            raise UserInputError(f"refiner: saved adapter state does not fit this adapter ({err})") from None
        self._optimizer = None
        if state.get("optimizer") is not None:
            self._get_optimizer().load_state_dict(state["optimizer"])

    def reconstruct(self, image: Tensor) -> Tensor:
        """What the VAE can represent of an image: decode(encode(image)), (H, W, 3) in [0, 1].

        Useful to measure the consistency guidance, which acts in latent space.
        """
        with torch.no_grad():
            z = self._encode(self._to_nchw(image.float()))
            return self._from_nchw(self._decode(z), image.shape[0], image.shape[1]).to(image.device)

    # -- internals -------------------------------------------------------------------------------
    def _check_features(self, view: RefinerInput) -> None:
        if self.adapter is not None and view.feature_channels != self.config.feature_channels:
            raise UserInputError(f"RefinerInput.features has {view.feature_channels} channels; the "
                                 f"refiner was configured with feature_channels={self.config.feature_channels}")

    def _padding(self, height: int, width: int) -> tuple[int, int]:
        """Pixels to add at the bottom/right so both sides are multiples of ``self.multiple``."""
        return (-height) % self.multiple, (-width) % self.multiple

    def _to_nchw(self, image_hwc: Tensor) -> Tensor:
        """(H, W, C) -> (1, C, H', W') on the model device, edge-padded to the required multiple."""
        pad_h, pad_w = self._padding(image_hwc.shape[0], image_hwc.shape[1])
        x = image_hwc.to(self.device, torch.float32).permute(2, 0, 1)[None]
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return x

    @staticmethod
    def _from_nchw(x: Tensor, height: int, width: int) -> Tensor:
        """(1, C, H', W') -> (H, W, C) float32, padding cropped."""
        return x[0, :, :height, :width].permute(1, 2, 0).float()

    def _encode(self, image_nchw: Tensor) -> Tensor:
        """(1, 3, H, W) in [0, 1] -> scaled latents (1, 4, H/v, W/v); the posterior mode (deterministic)."""
        encoded = self.vae.encode((image_nchw * 2.0 - 1.0).to(self.dtype))
        # AutoencoderKL gives a distribution (its mode is used); AutoencoderTiny (TAESD) the latents
        latents = encoded.latent_dist.mode() if hasattr(encoded, "latent_dist") else encoded.latents
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        return (latents - shift) * self.vae.config.scaling_factor

    def _decode(self, latents: Tensor) -> Tensor:
        """Scaled latents (1, 4, h, w) -> image (1, 3, h*v, w*v) in [0, 1], float32."""
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        image = self.vae.decode(latents / self.vae.config.scaling_factor + shift).sample
        return ((image.float() + 1.0) / 2.0).clamp(0.0, 1.0)

    def _latent_mask(self, known: Tensor) -> Tensor:
        """(H, W) bool -> (1, 1, h, w) float: 1 where every pixel under the latent pixel is known."""
        # Padded pixels copy the edge pixels (replicate padding), so they copy their knownness too.
        mask = self._to_nchw(known.to(torch.float32)[..., None])
        mask = -F.max_pool2d(-mask, kernel_size=self.vae_scale_factor)     # min-pool
        return mask.to(self.dtype)

    def _text_embeddings(self, prompt: str, classifier_free: bool) -> Tensor:
        """(1 or 2, L, D): [unconditional, conditional] when classifier-free, else conditional.
        A prompt longer than the text encoder takes is cut as the first view's is (one warning)."""
        from .diffusion import truncate_prompt

        prompt = truncate_prompt(prompt, self.pipeline.tokenizer, self.label)
        cond, uncond = self.pipeline.encode_prompt(prompt, self.device, 1, classifier_free,
                                                   negative_prompt=self.config.negative_prompt)
        return torch.cat([uncond, cond]) if classifier_free else cond

    def _adapter_input(self, view: RefinerInput) -> Tensor:
        """(1, 5 + F, H', W') float32 on the device, padded like the images."""
        x = adapter_input(view.rendered_rgb, view.rendered_depth, view.opacity, view.features,
                          self.config.adapter.depth_near_quantile)
        return self._to_nchw(x[0].permute(1, 2, 0))

    def _residuals(self, view: RefinerInput) -> list[Tensor] | None:
        """Adapter residuals for one view in the model dtype, or None without an adapter."""
        if self.adapter is None:
            return None
        return [r.to(self.dtype) * self.config.adapter.residual_scale
                for r in self.adapter(self._adapter_input(view))]

    def _predict_noise(self, scheduler: Any, z: Tensor, t: Tensor, text: Tensor,
                       residuals: list[Tensor] | None) -> Tensor:
        """The UNet's (guided) prediction at latents z (1, 4, h, w) and timestep t."""
        batch = text.shape[0]
        model_input = scheduler.scale_model_input(torch.cat([z] * batch), t)
        extra = {}
        if residuals is not None:
            # The UNet pops from this list: give it a fresh one per call.
            extra["down_intrablock_additional_residuals"] = [torch.cat([r] * batch) for r in residuals]
        prediction = self.unet(model_input, t, encoder_hidden_states=text, **extra).sample
        if batch == 2:
            uncond, cond = prediction.chunk(2)
            prediction = uncond + self.config.guidance_scale * (cond - uncond)
        return prediction

    def _training_scheduler(self) -> Any:
        """A DDPM scheduler with the pipeline's noise schedule (add_noise / get_velocity)."""
        from diffusers import DDPMScheduler

        return DDPMScheduler.from_config(self.pipeline.scheduler.config)

    def _get_optimizer(self) -> torch.optim.Optimizer:
        """The adapter's AdamW, kept across calls (progressive test-time training)."""
        if self._optimizer is None:
            acfg = self.config.adapter
            self._optimizer = torch.optim.AdamW(self.adapter.parameters(), lr=acfg.lr,
                                                weight_decay=acfg.weight_decay)
        return self._optimizer

    def _adapter_metadata(self) -> dict[str, str]:
        """What must match between a saved adapter and this refiner (all values strings)."""
        return {"format": ADAPTER_FORMAT,
                "in_channels": str(NON_FEATURE_CHANNELS + self.config.feature_channels),
                "specs": json.dumps([asdict(s) for s in self.specs]),
                "vae_scale_factor": str(self.vae_scale_factor),
                "base_channels": str(self.config.adapter.base_channels),
                "res_blocks_per_scale": str(self.config.adapter.res_blocks_per_scale)}


# ----------------------------------------------------------------------------- scheduler helpers
def _img2img_timesteps(scheduler: Any, num_inference_steps: int, strength: float) -> Tensor:
    """The tail of the schedule that img2img runs at ``strength`` (as diffusers' img2img pipeline)."""
    init_steps = min(int(num_inference_steps * strength), num_inference_steps)
    start = max(num_inference_steps - init_steps, 0)
    order = getattr(scheduler, "order", 1)
    timesteps = scheduler.timesteps[start * order:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start * order)
    return timesteps


def _step_kwargs(scheduler: Any, generator: torch.Generator) -> dict[str, Any]:
    """Pass the generator to ``scheduler.step`` when it takes one (stochastic samplers)."""
    return {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}


def _randn(shape: tuple[int, ...] | torch.Size, generator: torch.Generator, device: torch.device,
           dtype: torch.dtype) -> Tensor:
    """Standard normal noise drawn on the generator's device (same numbers on any target device)."""
    return torch.randn(tuple(shape), generator=generator, device=generator.device,
                       dtype=torch.float32).to(device=device, dtype=dtype)
