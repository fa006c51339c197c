"""The accepted values of every numeric and named-choice setting reachable from GenerateConfig
(`scenedreamer generate --list-settings`), as one table (config_io.register_bounds).

GenerateConfig checks the whole tree against it when it is built (a preset, ``--set``, a saved
config.json, a batch line), so a bad value is refused before a run folder exists, naming the
user's dotted key. A bound says what the code can run with, not what is sensible: the limits are
where a value stops meaning anything (a negative step count, a probability above 1, a zero
size) or would exhaust memory by construction. A field that takes any finite number says why
(``free``). tests/core/test_config_io.py walks every key and checks that an out-of-range value
is refused naming it.
"""

from __future__ import annotations

from ..config_io import Bound, register_bounds
from ..geometry.config import AlignConfig, ForwardWarpConfig, SeamConfig
from ..priors.config import (AdapterConfig, ClassicalInpaintConfig, DepthCompletionConfig, DepthNetworkConfig,
                             DiffusionConfig, OfflineRefinerConfig, OracleDepthConfig, RefinerConfig)
from ..priors.procedural.config import ProceduralWorldConfig
from ..representation.config import (BakeConfig, DensifyConfig, DistillConfig, FitConfig, GaussianConfig,
                                     SamplingConfig, TriplaneConfig)
from ..representation.rasterize.config import RasterConfig
from ..support.config import SupportConfig
from .config import FirstViewConfig, InitConfig, ProgressiveConfig, ExportConfig, TrajectorySpec

COUNT = Bound(low=0)
"""a number of things or steps, 0 allowed (0 = none / off)"""
POSITIVE_COUNT = Bound(low=1)
"""a number of things that must be at least one"""
POSITIVE = Bound(low=0.0, low_open=True)
"""a length, scale, rate or tolerance that must be > 0"""
NON_NEGATIVE = Bound(low=0.0)
"""a weight, margin or length where 0 means "none" """
FRACTION = Bound(low=0.0, high=1.0)
"""a share, probability or opacity in [0, 1]"""
SEED = Bound(low=0, high=2**63 - 1)
"""a random seed: a non-negative 64-bit integer (torch and numpy generators take no negative seed)"""
MAX_TEXELS = 16384
"""Largest side of any grid, map or image the config sizes (a 16384^2 float32 map is 1 GiB)."""
SIDE = Bound(low=1, high=MAX_TEXELS)
"""a grid / map / patch side in texels or pixels"""


def free(reason: str) -> Bound:
    """A field that takes any finite number (the type check refuses NaN and infinity)."""
    return Bound(unbounded=reason)


register_bounds(TrajectorySpec, frames=Bound(low=2, high=10000),        # a path needs 2 cameras; 10k views is days of work
                fov_deg=Bound(low=0.0, high=180.0, low_open=True, high_open=True))   # a pinhole sees less than 180 degrees
register_bounds(FirstViewConfig, depth_png_scale=POSITIVE, max_upscale=Bound(low=1.0))
register_bounds(ProceduralWorldConfig,
                ground_height=POSITIVE, sky_depth=POSITIVE, near=POSITIVE, terrain_half_extent=POSITIVE,
                heightmap_resolution=Bound(low=8, high=MAX_TEXELS), march_steps=POSITIVE_COUNT,
                march_chunk=POSITIVE_COUNT, bisection_steps=COUNT, texture_resolution=Bound(low=8, high=MAX_TEXELS),
                clear_radius=NON_NEGATIVE, path_half_width=NON_NEGATIVE, scatter_radius=POSITIVE,
                fog_full_fraction=Bound(low=0.0, high=1.0, high_open=True),   # a fade between this x sky_depth and sky_depth
                shadow_map_resolution=Bound(low=0, high=MAX_TEXELS), shadow_strength=FRACTION,   # shadow map: 0 = none, else >= 8 (the class checks)
                antialias=Bound(low=1, high=9),           # odd, checked by the class; 9x9 = 81 samples a pixel
                room_width=POSITIVE, room_height=POSITIVE, room_back=POSITIVE, room_front=POSITIVE)
register_bounds(OracleDepthConfig, scale=POSITIVE,
                shift=free("an affine offset of the corrupted depth: any sign is a valid unknown shift"),
                noise_std=NON_NEGATIVE, noise_seed=SEED)
register_bounds(ClassicalInpaintConfig, large_hole_radius=NON_NEGATIVE, opencv_method=Bound(choices=("telea", "ns")),
                opencv_radius=POSITIVE, patch_size=Bound(low=1, high=64), patchmatch_max_side=Bound(low=8, high=MAX_TEXELS),
                crop_margin=COUNT)
register_bounds(DepthCompletionConfig, foreground_ratio=NON_NEGATIVE, max_passes=POSITIVE_COUNT)
register_bounds(DiffusionConfig, num_inference_steps=Bound(low=1, high=1000),   # schedulers train on 1000 timesteps
                guidance_scale=NON_NEGATIVE, size_multiple=Bound(low=1, high=512),
                working_long_side=Bound(low=64, high=MAX_TEXELS), seam_feather_px=COUNT)
register_bounds(DepthNetworkConfig)     # kind: an enum, checked by its type
register_bounds(TriplaneConfig, resolution=Bound(low=2, high=4096), channels=Bound(low=1, high=1024),
                combine=Bound(choices=("sum", "concat")), hidden_width=Bound(low=1, high=4096),
                hidden_layers=Bound(low=0, high=64), feature_dim=Bound(low=0, high=1024),
                plane_init_std=NON_NEGATIVE,
                density_bias=free("an offset before softplus: any value gives a valid (if empty or full) start"),
                center=free("a world position, scene units"), radius=POSITIVE,
                bounds_quantile=Bound(low=0.0, high=1.0, low_open=True), bounds_margin=POSITIVE,
                contraction_norm=Bound(choices=("inf", "l2")), lr_planes=NON_NEGATIVE, lr_mlp=NON_NEGATIVE)
register_bounds(SamplingConfig, near=POSITIVE, far=POSITIVE, linear_range=POSITIVE,
                stratified_bins=POSITIVE_COUNT, guided_edges=COUNT, guide_relative_width=NON_NEGATIVE,
                guide_min_width=NON_NEGATIVE, free_space_margin=FRACTION, importance_blur=FRACTION,
                eval_stratified_bins=POSITIVE_COUNT, eval_guided_edges=COUNT, render_chunk_rays=POSITIVE_COUNT)
register_bounds(FitConfig, patch_size=SIDE, patches_per_step=POSITIVE_COUNT, replay_fraction=FRACTION,
                l1_weight=NON_NEGATIVE, ssim_weight=NON_NEGATIVE, ssim_window=SIDE, depth_weight=NON_NEGATIVE,
                inpainted_weight=NON_NEGATIVE, opacity_weight=NON_NEGATIVE, distortion_weight=NON_NEGATIVE,
                free_space_weight=NON_NEGATIVE, tv_weight=NON_NEGATIVE, lr_scale=NON_NEGATIVE, warmup_steps=COUNT,
                lr_final_ratio=NON_NEGATIVE, adam_eps=POSITIVE, background=FRACTION,   # a colour in [0, 1]
                log_every=POSITIVE_COUNT, max_cached_views=POSITIVE_COUNT)
register_bounds(RefinerConfig, strength=FRACTION, num_inference_steps=Bound(low=1, high=1000), guidance_scale=NON_NEGATIVE,
                consistency_weight=FRACTION, consistency_steps_fraction=FRACTION,
                keep_threshold=NON_NEGATIVE,        # above 1 = never paste back (documented)
                seam_feather_px=COUNT, floater_depth_tolerance=POSITIVE, feature_channels=COUNT,
                adapter_train_steps_per_view=COUNT)
register_bounds(AdapterConfig, base_channels=Bound(low=1, high=4096), res_blocks_per_scale=COUNT,
                residual_scale=free("a signed multiplier of the injected residual (T2I-Adapter's conditioning scale)"),
                lr=NON_NEGATIVE, weight_decay=NON_NEGATIVE, max_grad_norm=NON_NEGATIVE, init_seed=SEED,
                train_batch_size=POSITIVE_COUNT, train_crop=COUNT, train_timestep_fraction=Bound(low=0.0, high=1.0, low_open=True),
                depth_near_quantile=FRACTION)
register_bounds(OfflineRefinerConfig, opacity_low=FRACTION, opacity_high=FRACTION, floater_depth_tolerance=POSITIVE,
                keep_threshold=NON_NEGATIVE,        # above 1 = never keep exactly (documented)
                seam_radius_px=COUNT, seam_edge_eps=POSITIVE, unknown_render_trust=FRACTION,
                consistency_weight=FRACTION)
register_bounds(ForwardWarpConfig, near=POSITIVE, crack_depth_rel_tol=NON_NEGATIVE, edge_depth_rel_tol=NON_NEGATIVE,
                free_space_margin=FRACTION, same_surface_margin=FRACTION,
                sight_clearance=NON_NEGATIVE)
register_bounds(AlignConfig, iterations=COUNT, outlier_mads=POSITIVE, min_pixels=Bound(low=2),   # 2 unknowns: scale, shift
                max_fit_samples=Bound(low=2), min_depth=POSITIVE, max_depth=POSITIVE,
                start_trials=POSITIVE_COUNT, start_samples=Bound(low=1),
                regression=Bound(choices=AlignConfig.REGRESSIONS))
register_bounds(SeamConfig, decay_px=POSITIVE, iterations_per_level=COUNT, min_level_size=Bound(low=1, high=MAX_TEXELS),
                coarsest_iteration_factor=COUNT, min_depth=POSITIVE, max_anchor_mismatch=NON_NEGATIVE)
register_bounds(InitConfig, neighbour_yaws_deg=Bound(low=-180.0, high=180.0),
                neighbour_pitches_deg=Bound(low=-90.0, high=90.0),   # beyond 90 the camera is upside down
                neighbour_shift=free("a signed sideways offset, scene units (negative: against the yaw)"),
                first_view_median_depth=POSITIVE, fit_steps=COUNT)
register_bounds(ProgressiveConfig, neighbours=POSITIVE_COUNT, fit_steps_per_view=COUNT, adapter_views=COUNT,
                unseen_opacity=FRACTION, render_depth_tolerance=NON_NEGATIVE, grow_covered_tolerance=NON_NEGATIVE,
                occlusion_margin=FRACTION,
                max_hole_fraction_warn=FRACTION, active_views=COUNT, active_after_views=COUNT)
register_bounds(SupportConfig, rgb_storage_dtype=Bound(choices=("float32", "float16")), overlap_grid=SIDE,
                overlap_depth_quantiles=FRACTION, depth_stats_stride=POSITIVE_COUNT, fallback_depths=POSITIVE,
                rotation_weight=NON_NEGATIVE, replay_recent=COUNT, replay_recent_weight=FRACTION,
                export_depth_unit=POSITIVE, backdrop_depth=POSITIVE, legacy_backdrop_depth=POSITIVE,
                export_points=POSITIVE_COUNT, export_min_camera_spread=NON_NEGATIVE)
register_bounds(ExportConfig, video_frames_per_view=POSITIVE_COUNT, fps=Bound(low=1, high=240))
register_bounds(BakeConfig, min_opacity=FRACTION, stride=POSITIVE_COUNT, voxel_size=NON_NEGATIVE,
                voxel_footprint_factor=POSITIVE, scale_factor=POSITIVE, render_batch=POSITIVE_COUNT)
register_bounds(GaussianConfig, sh_degree=Bound(low=0, high=3), feature_dim=Bound(low=0, high=1024),
                init_stride=POSITIVE_COUNT, init_scale_factor=POSITIVE, init_opacity=Bound(low=0.0, high=1.0, low_open=True, high_open=True),
                init_flatness=Bound(low=0.0, high=1.0, low_open=True), init_min_cos=Bound(low=0.0, high=1.0, low_open=True),
                init_max_jump_pixels=POSITIVE, lr_means=NON_NEGATIVE, lr_log_scales=NON_NEGATIVE, lr_quats=NON_NEGATIVE,
                lr_opacity_logits=NON_NEGATIVE, lr_sh0=NON_NEGATIVE, lr_shN=NON_NEGATIVE, lr_features=NON_NEGATIVE,
                depth_opacity_eps=FRACTION)
register_bounds(RasterConfig, tile_size=Bound(low=1, high=256), near_plane=POSITIVE, far_plane=POSITIVE,
                blur_2d=NON_NEGATIVE, alpha_min=FRACTION, alpha_max=Bound(low=0.0, high=1.0, low_open=True, high_open=True),
                transmittance_min=FRACTION, fov_clamp=POSITIVE, batch_elements=POSITIVE_COUNT, depth_chunk=POSITIVE_COUNT)
register_bounds(DensifyConfig, start_step=COUNT, stop_step=COUNT, every=POSITIVE_COUNT, grad_threshold=NON_NEGATIVE,
                grow_scale_relative=NON_NEGATIVE, split_scale_divisor=POSITIVE, prune_opacity=FRACTION,
                prune_scale_relative=POSITIVE, reset_opacity_every=COUNT, reset_opacity_value=FRACTION,
                reset_recovery_steps=COUNT,
                max_gaussians=POSITIVE_COUNT, seed=SEED)
register_bounds(DistillConfig, steps=COUNT, steps_per_view=NON_NEGATIVE, extra_views_per_gap=COUNT, sky_stride=POSITIVE_COUNT,
                sky_radius_factor=Bound(low=1.0, low_open=True),     # the shell lies beyond the farthest known depth
                sky_parallax_pixels=POSITIVE, sky_scale_factor=POSITIVE)
