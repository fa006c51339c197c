"""The render adapter: residual shapes follow the UNet's blocks, zero-init is a no-op, inputs are scale-free."""

import pytest
import torch
from diffusers import UNet2DConditionModel

from scenedreamer.priors.adapter import (NON_FEATURE_CHANNELS, AdapterConfig, RenderAdapter, adapter_input,
                                         normalised_disparity, required_multiple, residual_specs)

VAE_FACTOR = 8
TEXT_DIM = 16


def tiny_unet(down_block_types, up_block_types, channels, seed=0):
    """A tiny random UNet of a given block layout (SD-style or SDXL-style)."""
    torch.manual_seed(seed)
    return UNet2DConditionModel(block_out_channels=channels, layers_per_block=1, sample_size=8,
                                in_channels=4, out_channels=4, down_block_types=down_block_types,
                                up_block_types=up_block_types, cross_attention_dim=TEXT_DIM,
                                attention_head_dim=4, norm_num_groups=4).eval()


LAYOUTS = {
    # the tiny test UNet of tests/tiny_models.py
    "tiny": (("CrossAttnDownBlock2D", "DownBlock2D"), ("UpBlock2D", "CrossAttnUpBlock2D"), (8, 16)),
    # Stable Diffusion 1.x / 2.x: three cross-attention blocks then a plain one
    "sd": (("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",), ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
           (8, 16, 16, 16)),
    # SDXL-like: a plain block first (its residual goes in after its downsampler)
    "sdxl_like": (("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                  ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), (8, 16, 16)),
}


def injection_shapes(unet, latents, text):
    """Shapes of the tensors each down block adds its adapter residual to (read with hooks)."""
    shapes = []

    def hook(block, _inputs, output):
        hidden, states = output
        if getattr(block, "has_cross_attention", False):
            shapes.append(tuple(states[len(block.resnets) - 1].shape))   # before the downsampler
        else:
            shapes.append(tuple(hidden.shape))                           # after it
    handles = [b.register_forward_hook(hook) for b in unet.down_blocks]
    with torch.no_grad():
        unet(latents, 10, encoder_hidden_states=text)
    for h in handles:
        h.remove()
    return shapes


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_residual_shapes_line_up_with_unet_down_blocks(layout):
    unet = tiny_unet(*LAYOUTS[layout])
    specs = residual_specs(unet, VAE_FACTOR)
    side = 2 * required_multiple(specs, VAE_FACTOR)       # an image size every scale divides
    adapter = RenderAdapter(NON_FEATURE_CHANNELS + 2, specs, VAE_FACTOR,
                            AdapterConfig(base_channels=4, zero_init=False))
    residuals = adapter(torch.randn(1, NON_FEATURE_CHANNELS + 2, side, side))
    latents = torch.randn(1, 4, side // VAE_FACTOR, side // VAE_FACTOR)
    text = torch.randn(1, 3, TEXT_DIM)
    assert [tuple(r.shape) for r in residuals] == injection_shapes(unet, latents, text)

    with torch.no_grad():
        plain = unet(latents, 10, encoder_hidden_states=text).sample
        guided = unet(latents, 10, encoder_hidden_states=text,
                      down_intrablock_additional_residuals=list(residuals)).sample
    assert guided.shape == plain.shape
    assert (guided - plain).abs().max() > 1e-4            # the residuals reach the prediction


def test_zero_initialised_adapter_changes_nothing():
    unet = tiny_unet(*LAYOUTS["tiny"])
    specs = residual_specs(unet, VAE_FACTOR)
    adapter = RenderAdapter(NON_FEATURE_CHANNELS, specs, VAE_FACTOR, AdapterConfig(base_channels=4))
    residuals = adapter(torch.randn(1, NON_FEATURE_CHANNELS, 32, 32))
    assert all(bool((r == 0).all()) for r in residuals)
    latents, text = torch.randn(1, 4, 4, 4), torch.randn(1, 3, TEXT_DIM)
    with torch.no_grad():
        plain = unet(latents, 10, encoder_hidden_states=text).sample
        guided = unet(latents, 10, encoder_hidden_states=text,
                      down_intrablock_additional_residuals=list(residuals)).sample
    assert torch.equal(plain, guided)


def test_specs_of_the_tiny_unet():
    unet = tiny_unet(*LAYOUTS["tiny"])
    specs = residual_specs(unet, VAE_FACTOR)
    assert [(s.channels, s.downscale) for s in specs] == [(8, 8), (16, 16)]
    assert required_multiple(specs, VAE_FACTOR) == 16


def test_normalised_disparity_is_scale_free_and_zero_where_empty():
    g = torch.Generator().manual_seed(0)
    depth = torch.rand(12, 10, generator=g) * 5 + 1
    depth[:3] = 0.0                                      # empty pixels
    d1 = normalised_disparity(depth, 0.02)
    d2 = normalised_disparity(depth * 37.0, 0.02)
    torch.testing.assert_close(d1, d2)
    assert bool((d1[:3] == 0).all())
    assert float(d1.min()) >= 0.0 and float(d1.max()) <= 1.0
    assert float(d1[3:].min()) > 0.0
    # nearer pixels get larger disparity
    flat_d, flat_disp = depth[3:].flatten(), d1[3:].flatten()
    assert flat_disp[flat_d.argmin()] >= flat_disp[flat_d.argmax()]
    assert bool((normalised_disparity(torch.zeros(4, 4), 0.02) == 0).all())


def test_adapter_input_layout():
    rgb, depth, opacity = torch.rand(6, 7, 3), torch.rand(6, 7) + 1, torch.rand(6, 7)
    features = torch.randn(6, 7, 3)
    x = adapter_input(rgb, depth, opacity, features, 0.02)
    assert x.shape == (1, NON_FEATURE_CHANNELS + 3, 6, 7)
    torch.testing.assert_close(x[0, :3], rgb.permute(2, 0, 1) * 2 - 1)
    torch.testing.assert_close(x[0, 4], opacity)
    torch.testing.assert_close(x[0, 5:], features.permute(2, 0, 1))
    assert adapter_input(rgb, depth, opacity, torch.zeros(6, 7, 0), 0.02).shape == (1, 5, 6, 7)
