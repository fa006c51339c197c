"""DiffusionRefiner on a tiny random Stable Diffusion pipeline (64 px class, a few steps, CPU)."""

import dataclasses

import pytest
import torch
from tiny_models import tiny_sd_pipeline

from scenedreamer.errors import InternalError, UserInputError
from scenedreamer.priors.adapter import AdapterConfig
from scenedreamer.priors.refiner import (DiffusionRefiner, Refiner, RefinerConfig, RefinerInput,
                                         feather_alpha, feather_alpha_reference, floater_mask,
                                         paste_well_observed, render_over_local)

H, W = 32, 40          # not multiples of the UNet's 16 px: exercises the padding path
FEATURES = 2


@pytest.fixture(scope="module")
def pipeline():
    return tiny_sd_pipeline(seed=0)


def make_config(**changes):
    base = RefinerConfig(num_inference_steps=3, strength=0.67, guidance_scale=1.0,
                         feature_channels=FEATURES, keep_threshold=0.95, seam_feather_px=2,
                         adapter=AdapterConfig(base_channels=8, lr=1e-3))
    return dataclasses.replace(base, **changes)


def make_view(seed=0, height=H, width=W, features=FEATURES, local_depth=None):
    """A render whose left third is opaque, middle semi-transparent, right third empty."""
    g = torch.Generator().manual_seed(seed)
    opacity = torch.zeros(height, width)
    opacity[:, : width // 3] = 1.0
    opacity[:, width // 3: 2 * width // 3] = 0.5
    colour = torch.rand(height, width, 3, generator=g)
    depth = torch.where(opacity > 0, 2.0 + torch.rand(height, width, generator=g), torch.zeros(()))
    known = torch.zeros(height, width, dtype=torch.bool)
    known[:, : width // 2] = True
    return RefinerInput(rendered_rgb=colour * opacity[..., None], rendered_depth=depth, opacity=opacity,
                        features=torch.randn(height, width, features, generator=g),
                        local_rgb=torch.rand(height, width, 3, generator=g), local_known=known,
                        local_depth=local_depth)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_refine_shape_range_and_determinism(pipeline):
    refiner = DiffusionRefiner(pipeline, make_config(guidance_scale=2.0), device="cpu", dtype=torch.float32)
    assert isinstance(refiner, Refiner)
    view = make_view()
    a = refiner.refine(view, "a lake", gen(1))
    b = refiner.refine(view, "a lake", gen(1))
    c = refiner.refine(view, "a lake", gen(2))
    assert a.shape == (H, W, 3) and a.dtype == torch.float32
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


def test_well_observed_pixels_are_kept_exactly(pipeline):
    refiner = DiffusionRefiner(pipeline, make_config(), device="cpu", dtype=torch.float32)
    view = make_view()
    out = refiner.refine(view, "a lake", gen(3))
    keep = view.opacity >= refiner.config.keep_threshold
    assert bool(keep.any())
    assert torch.equal(out[keep], view.rendered_rgb[keep])
    # away from the kept region and its feathered seam, the refiner did change the image
    far = torch.zeros_like(keep)
    far[:, W // 3 + 3:] = True
    assert (out[far] - view.rendered_rgb[far]).abs().mean() > 1e-2


def test_floaters_are_not_kept(pipeline):
    """An opaque render that disagrees with the warp's depth is not pasted back."""
    base = make_view()
    local_depth = torch.where(base.local_known, base.rendered_depth * 2.0, torch.zeros(()))  # far off
    view = dataclasses.replace(base, local_depth=local_depth)
    refiner = DiffusionRefiner(pipeline, make_config(), device="cpu", dtype=torch.float32)
    floaters = floater_mask(view, refiner.config.floater_depth_tolerance)
    assert bool(floaters[:, : W // 3].all())
    out = refiner.refine(view, "a lake", gen(3))
    assert (out[:, : W // 3] - view.rendered_rgb[:, : W // 3]).abs().mean() > 1e-2


def consistency_errors(pipeline, view, inner_columns):
    """Mean |refined - VAE reconstruction of the local frame| on some columns, per weight.

    The guidance acts on latents, so the reachable target is what the VAE can represent of the
    local frame (a random tiny VAE does not reproduce the image itself).
    """
    errors, target = {}, None
    for weight in (0.0, 0.5, 1.0):
        config = make_config(consistency_weight=weight, consistency_steps_fraction=1.0,
                             keep_threshold=2.0)          # nothing pasted back: measure the diffusion
        refiner = DiffusionRefiner(pipeline, config, device="cpu", dtype=torch.float32)
        target = refiner.reconstruct(view.local_rgb) if target is None else target
        out = refiner.refine(view, "a lake", gen(4))
        errors[weight] = float((out[:, inner_columns] - target[:, inner_columns]).abs().mean())
    return errors


def test_consistency_weight_pulls_known_pixels_toward_local_frame(pipeline):
    errors = consistency_errors(pipeline, make_view(), slice(0, W // 2 - 8))  # known, off the mask edge
    assert errors[1.0] < errors[0.5] < errors[0.0]
    # the unknown half's latents still reach known pixels through the tiny VAE's global attention
    assert errors[1.0] < 0.85 * errors[0.0]


def test_full_consistency_on_a_fully_known_frame_reproduces_it(pipeline):
    view = dataclasses.replace(make_view(), local_known=torch.ones(H, W, dtype=torch.bool))
    errors = consistency_errors(pipeline, view, slice(0, W))
    assert errors[1.0] < 1e-5 < errors[0.5] < errors[0.0]


def test_strength_zero_returns_the_filled_render(pipeline):
    config = make_config(strength=0.0)
    refiner = DiffusionRefiner(pipeline, config, device="cpu", dtype=torch.float32)
    view = make_view()
    out = refiner.refine(view, "a lake", gen(5))
    floaters = floater_mask(view, config.floater_depth_tolerance)
    expected = paste_well_observed(render_over_local(view, floaters), view,
                                   view.opacity >= config.keep_threshold, config.seam_feather_px)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_only_the_adapter_is_trained(pipeline):
    refiner = DiffusionRefiner(pipeline, make_config(), device="cpu", dtype=torch.float32)
    frozen = {"unet": refiner.unet, "vae": refiner.vae, "text_encoder": refiner.text_encoder}
    before = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in frozen.items()}
    adapter_before = {k: v.clone() for k, v in refiner.adapter.state_dict().items()}
    events = []
    pairs = [(make_view(seed=s), torch.rand(H, W, 3, generator=gen(10 + s))) for s in range(2)]
    metrics = refiner.train_adapter(pairs, steps=3, generator=gen(6), on_event=events.append, prompt="a lake")

    assert set(metrics) >= {"loss", "loss_mean"} and torch.isfinite(torch.tensor(metrics["loss"]))
    assert [e.step for e in events] == [1, 2, 3] and all(e.stage == "adapter" for e in events)
    for name, model in frozen.items():
        assert all(p.grad is None for p in model.parameters()), name
        assert all(not p.requires_grad for p in model.parameters()), name
        for key, value in model.state_dict().items():
            assert torch.equal(value, before[name][key]), f"{name}.{key} changed"
    changed = [k for k, v in refiner.adapter.state_dict().items() if not torch.equal(v, adapter_before[k])]
    assert changed == list(adapter_before)                 # every adapter tensor moved
    assert all(p.grad is not None for p in refiner.adapter.parameters())


def test_training_in_batches(pipeline):
    config = make_config(adapter=AdapterConfig(base_channels=8, train_batch_size=2))
    refiner = DiffusionRefiner(pipeline, config, device="cpu", dtype=torch.float32)
    pairs = [(make_view(seed=s), torch.rand(H, W, 3, generator=gen(s))) for s in range(3)]
    assert torch.isfinite(torch.tensor(refiner.train_adapter(pairs, steps=1, generator=gen(0))["loss"]))
    odd = [(make_view(height=H + 8), torch.rand(H + 8, W, 3))] + pairs
    with pytest.raises(UserInputError, match="different sizes"):
        refiner.train_adapter(odd, steps=1, generator=gen(0))


def test_inpainting_unet_is_refused():
    with pytest.raises(UserInputError, match="inpainting"):
        DiffusionRefiner(tiny_sd_pipeline(inpainting=True), make_config(), device="cpu", dtype=torch.float32)


def test_v_prediction_models_train(pipeline):
    """SD 2 (768) predicts velocity: the training target follows the scheduler's prediction type."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    v_pipe = StableDiffusionPipeline(**{**pipeline.components, "scheduler": DDIMScheduler.from_config(
        pipeline.scheduler.config, prediction_type="v_prediction")}, requires_safety_checker=False)
    refiner = DiffusionRefiner(v_pipe, make_config(), device="cpu", dtype=torch.float32)
    metrics = refiner.train_adapter([(make_view(), torch.rand(H, W, 3))], steps=1, generator=gen(7))
    assert torch.isfinite(torch.tensor(metrics["loss"]))


def test_adapter_save_load_round_trip(pipeline, tmp_path):
    config = make_config()
    trained = DiffusionRefiner(pipeline, config, device="cpu", dtype=torch.float32)
    trained.train_adapter([(make_view(), torch.rand(H, W, 3, generator=gen(8)))], steps=2, generator=gen(8))
    path = tmp_path / "adapter.safetensors"
    trained.save_adapter(path)
    assert path.is_file() and not list(tmp_path.glob(".*tmp"))   # atomic: no temp file left

    fresh = DiffusionRefiner(pipeline, config, device="cpu", dtype=torch.float32)
    view = make_view()
    untrained_out = fresh.refine(view, "a lake", gen(9))
    trained_out = trained.refine(view, "a lake", gen(9))
    fresh.load_adapter(path)
    assert torch.equal(fresh.refine(view, "a lake", gen(9)), trained_out)
    assert (untrained_out - trained_out).abs().max() > 0      # the training mattered

    other = DiffusionRefiner(pipeline, make_config(feature_channels=FEATURES + 1), device="cpu",
                             dtype=torch.float32)
    with pytest.raises(UserInputError, match="does not fit"):
        other.load_adapter(path)
    with pytest.raises(UserInputError, match="not found"):
        fresh.load_adapter(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserInputError):
        fresh.load_adapter(tmp_path / "junk.safetensors")


def test_without_adapter(pipeline, tmp_path):
    refiner = DiffusionRefiner(pipeline, make_config(use_adapter=False), device="cpu", dtype=torch.float32)
    assert refiner.adapter is None and "no adapter" in refiner.label
    view = make_view(features=5)          # features are ignored without an adapter
    out = refiner.refine(view, "a lake", gen(10))
    assert out.shape == (H, W, 3)
    assert refiner.train_adapter([(view, torch.rand(H, W, 3))], steps=2, generator=gen(10)) == {}
    with pytest.raises(UserInputError):
        refiner.save_adapter(tmp_path / "a.safetensors")


@pytest.mark.parametrize("scheduler_name", ["EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler"])
def test_other_schedulers(pipeline, scheduler_name):
    import diffusers

    scheduler = getattr(diffusers, scheduler_name).from_config(pipeline.scheduler.config)
    pipe = diffusers.StableDiffusionPipeline(**{**pipeline.components, "scheduler": scheduler},
                                             requires_safety_checker=False)
    refiner = DiffusionRefiner(pipe, make_config(), device="cpu", dtype=torch.float32)
    a = refiner.refine(make_view(), "a lake", gen(11))
    assert a.shape == (H, W, 3) and bool(torch.isfinite(a).all())
    assert torch.equal(a, refiner.refine(make_view(), "a lake", gen(11)))


def test_bad_input_is_a_user_error(pipeline):
    refiner = DiffusionRefiner(pipeline, make_config(), device="cpu", dtype=torch.float32)
    with pytest.raises(UserInputError, match="features"):
        refiner.refine(make_view(features=FEATURES + 1), "a lake", gen(0))
    view = make_view()
    # a mis-shaped input built by our own code is a bug, not the user's input (errors.InternalError)
    with pytest.raises(InternalError, match="opacity"):
        dataclasses.replace(view, opacity=torch.ones(H, W + 1))
    with pytest.raises(InternalError, match="bool"):
        dataclasses.replace(view, local_known=view.local_known.float())
    with pytest.raises(UserInputError, match="strength"):
        make_config(strength=1.5)
    with pytest.raises(UserInputError, match="does not match"):
        refiner.train_adapter([(view, torch.rand(H + 1, W, 3))], steps=1, generator=gen(0))


@pytest.mark.parametrize("feather", [0, 1, 3, 6])
def test_feather_alpha_matches_distance_transform_twin(feather):
    keep = torch.rand(23, 31, generator=gen(feather)) > 0.93
    torch.testing.assert_close(feather_alpha(keep, feather), feather_alpha_reference(keep, feather),
                               rtol=0, atol=1e-6)
    alpha = feather_alpha(keep, feather)
    assert bool((alpha[keep] == 1).all())


def test_a_long_prompt_is_cut_with_one_warning_naming_the_refiner(pipeline, recwarn):
    """Issue 12 item 5: the refiner encodes its prompt through the same truncation as the first
    view (it used to hand it to the pipeline, which cut it with its own log line)."""
    import warnings

    refiner = DiffusionRefiner(pipeline, make_config(), device="cpu", dtype=torch.float32)
    limit = pipeline.tokenizer.model_max_length
    prompt = "a lake! " * limit
    warnings.simplefilter("always")
    refiner.refine(make_view(), prompt, gen(1))
    cut = [w for w in recwarn.list if "prompt is" in str(w.message)]
    assert len(cut) == 1 and str(cut[0].message).startswith(refiner.label)


def test_training_crop_takes_the_same_place_in_the_input_and_the_latents():
    from scenedreamer.priors.refiner import training_crop

    multiple, scale, side = 16, 4, 32
    rows, cols = torch.arange(96)[:, None], torch.arange(128)[None, :]
    x = (rows * 1000 + cols).float().expand(2, 3, 96, 128)          # each pixel names its place
    z0 = ((rows[::scale] // scale) * 1000 + cols[:, ::scale] // scale).float().expand(2, 4, 24, 32)
    origins = set()
    for seed in range(12):
        xc, zc = training_crop(x, z0, side, multiple, scale, gen(seed))
        assert xc.shape[-2:] == (side, side) and zc.shape[-2:] == (side // scale, side // scale)
        top, left = int(xc[0, 0, 0, 0]) // 1000, int(xc[0, 0, 0, 0]) % 1000
        assert top % multiple == 0 and left % multiple == 0          # on the adapter's stride
        assert torch.equal(xc, x[..., top:top + side, left:left + side])
        assert torch.equal(zc, z0[..., top // scale:(top + side) // scale, left // scale:(left + side) // scale])
        origins.add((top, left))
    assert len(origins) > 3                                          # random places, not one
    # a side no longer than the crop stays whole
    xc, zc = training_crop(x[..., :32, :], z0[..., :8, :], side, multiple, scale, gen(0))
    assert xc.shape[-2] == 32 and zc.shape[-2] == 8


def test_adapter_trains_on_crops_at_a_smaller_unet_size(pipeline):
    refiner = DiffusionRefiner(pipeline, make_config(adapter=AdapterConfig(base_channels=8, train_crop=16)),
                               device="cpu", dtype=torch.float32)
    seen = []
    hook = refiner.unet.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    try:
        pairs = [(make_view(seed=s), torch.rand(H, W, 3, generator=gen(s))) for s in range(2)]
        metrics = refiner.train_adapter(pairs, steps=2, generator=gen(3))
    finally:
        hook.remove()
    latent = 16 // refiner.vae_scale_factor
    assert seen == [(latent, latent)] * 2 and torch.isfinite(torch.tensor(metrics["loss"]))
    with pytest.raises(UserInputError, match="refiner.adapter.train_crop: 24 is not a multiple of 16"):
        DiffusionRefiner(pipeline, make_config(adapter=AdapterConfig(base_channels=8, train_crop=24)),
                         device="cpu", dtype=torch.float32)


def test_the_fast_presets_train_the_adapter_on_crops():
    from scenedreamer.pipeline.config import FAST_ADAPTER_CROP, preset_config

    assert preset_config("sd15-fast").refiner.adapter.train_crop == FAST_ADAPTER_CROP == 256
    assert preset_config("sd2-fast").refiner.adapter.train_crop == 256
    assert preset_config("sd15").refiner.adapter.train_crop == 0      # the plain presets: whole views
