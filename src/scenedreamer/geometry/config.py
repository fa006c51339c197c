"""The geometry layer's tunables (depth alignment, seams, forward warping), without torch.

They live here, apart from the math that uses them, so building a run's config (and
``generate --dry-run`` / ``--help``) does not import torch; depth_align.py and warp.py import
them back under their old names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class AlignConfig:
    """Tunables of the robust scale-and-shift fit."""

    REGRESSIONS: ClassVar[tuple[str, ...]] = ("known_on_prediction", "prediction_on_known", "geometric_mean")
    """The line estimators ``regression`` takes (not a field)."""

    iterations: int = 3
    """Re-fits on the inliers after the first (all-pixel) least-squares fit."""
    outlier_mads: float = 3.0
    """A residual beyond this many robust standard deviations (1.4826 * MAD) is an outlier."""
    min_pixels: int = 16
    """Fewer usable known pixels than this is an error (nothing trustworthy to fit)."""
    max_fit_samples: int = 65536
    """The fit (and its residual) uses at most this many pixels: an even stride over the image
    (every k-th pixel) when it is larger. Speed; the statistics barely change."""
    min_depth: float = 1e-3
    """Aligned depths are clamped to at least this (scene units)."""
    max_depth: float = 1e4
    """Aligned depths are clamped to at most this (scene units; disparity floor 1/max_depth)."""
    robust_start: bool = True
    """Start the robust rounds from a least-median-of-squares line (the candidate through two
    known pixels whose median residual is smallest, ``start_trials`` candidates) instead of a
    least-squares fit to every known pixel. A few known pixels far outside the others' range
    (a misplaced surface where the prior sees sky) pull a least-squares line so far that the
    outlier test around it keeps them all; a median ignores up to half the pixels."""
    start_trials: int = 64
    """Candidate lines of the least-median-of-squares start (pairs of known pixels drawn with a
    fixed seed: the fit stays deterministic). With 30 % outliers, 64 draws all miss an
    outlier-free pair with probability 0.51^64, about 1e-19."""
    start_samples: int = 4096
    """The candidates' median residuals are taken over at most this many known pixels (an even
    stride over the fit's samples)."""
    relative_residuals: bool = True
    """Fits in depth space (relative and metric predictions) weigh and reject outliers by
    residuals relative to the known depth (least squares weighted by 1 / known^2) instead of
    absolute ones. A depth prediction's error grows with the depth, so absolute residuals let
    the few far pixels decide the fit; their small relative errors then become a large relative
    error on the near ground, which is most of a walk's new pixels, and the next view aligns to
    that. Disparity-space fits keep absolute residuals: there a too-far outlier's tiny
    disparity would weigh most."""
    regression: str = "known_on_prediction"
    """Which way the (weighted, trimmed) line is fitted, one of ``REGRESSIONS``.
    "known_on_prediction": least squares of the known value y on the prediction x (y ~ s x + t).
    That assumes x exact; but the prediction carries per-pixel noise, and least squares of y on
    a noisy x flattens the slope by var(x_true) / (var(x_true) + var(noise)) (regression
    dilution), a bias that every view of a walk would carry on. On the offline prior (1 % noise)
    that dilution is small: the slope comes out 0.017 % low (1.42833 for 1.42857), so the default
    stays; a walk's per-step depth drift of -0.03 % was the prior's noise image, the same for
    every camera (priors/offline.camera_noise_seed), and moved with either alternative by under
    0.002 %. "prediction_on_known": least squares of x on y
    (x ~ a y + b, same weights), inverted (s = 1/a, t = -b/a): unbiased when the known depth is
    exact and only the prediction is noisy. "geometric_mean" (reduced major axis): slope
    sign(cov) sqrt(var_y / var_x) of the weighted moments, between the two, for noise in both.
    Either alternative falls back to the first estimator when the weighted covariance is
    (numerically) zero, i.e. x and y are uncorrelated (|cov| <= 1e-9 sqrt(var_x var_y), also a
    constant known depth): there neither has a slope to invert. A constant prediction takes the
    scale-only fit whatever the choice. The robust start and the outlier trimming are the same
    for all three (residuals in known units). Note that inverting multiplies the first slope
    by 1 / corr^2, so it trusts that the prediction and the known depth correlate well."""

    def __post_init__(self) -> None:
        if self.regression not in self.REGRESSIONS:
            raise ValueError(f"AlignConfig.regression must be one of {', '.join(map(repr, self.REGRESSIONS))}, "
                             f"got {self.regression!r}")


@dataclass(frozen=True)
class SeamConfig:
    """Tunables of the seam compensation (offset diffusion into the new region)."""

    decay_px: float | None = 32.0
    """Offsets fade to zero about this many pixels inside the new region (screened diffusion);
    None keeps them harmonic (no fade: a hole surrounded by known depth is fully bent)."""
    iterations_per_level: int = 40
    """Jacobi sweeps at each level of the coarse-to-fine solve."""
    min_level_size: int = 8
    """Coarsest level: stop halving when the longer image side would drop below this."""
    coarsest_iteration_factor: int = 4
    """The coarsest level runs this many times ``iterations_per_level`` sweeps (it is tiny and
    carries the long-range part of the solution)."""
    min_depth: float = 1e-3
    """Compensated depths are clamped to at least this (scene units)."""
    max_anchor_mismatch: float | None = 0.2
    """A known pixel anchors the seam only when the aligned prediction there is within this
    fraction of its known depth; None: every known pixel anchors. Beyond it the two describe
    different surfaces (a depth edge seen one pixel apart by the warp and by the prediction, or a
    misregistered copy), and diffusing that mismatch would bend the new surface toward the other
    side of the edge; the next trustworthy anchors decide instead."""


@dataclass(frozen=True)
class ForwardWarpConfig:
    """Tunables of the hard (z-buffer) forward warp."""

    near: float = 1e-4
    """Points whose z-depth in the target camera is below this (scene units) are dropped."""
    fill_cracks: bool = True
    """Fill 1-pixel cracks (and see-through pixels) between two opposite neighbours that came from
    adjacent source pixels on one surface (see ``fill_cracks``)."""
    crack_depth_rel_tol: float = 0.05
    """Two neighbours lie on one surface when |d1 - d2| <= tol * min(d1, d2); a pixel between
    them is see-through (background visible through a crack of the foreground) when its depth
    exceeds the farther of the pair by more than tol * that depth."""
    drop_depth_edges: bool = False
    """Drop source pixels that have a 4-neighbour nearer by more than ``edge_depth_rel_tol``
    (the far side of depth edges, where monocular depth smears "flying pixels")."""
    edge_depth_rel_tol: float = 0.1
    """Relative depth jump that marks a source depth edge (used with ``drop_depth_edges``)."""
    best_view_free_space: bool = True
    """Warping several support views into one camera (pipeline/local_frame.py): drop every pixel
    of the second and later views that lies in front of what the first (best overlapping) view
    saw along the same line of sight, by more than ``free_space_margin``. The best view saw
    through that point, so it is a misregistered copy (a depth error of a few percent moves a
    surface's pixels sideways); a plain z-buffer keeps the nearest of every copy, which smears
    surfaces along the path and dots them over the sky."""
    free_space_margin: float = 0.05
    """Relative depth margin of ``best_view_free_space``: a point counts as seen through when its
    depth in the best view is below (1 - margin) x the depth that view saw at its pixel."""
    sight_clearance: float | None = None
    """Keep a warped pixel only where the source camera saw its line of sight: the point on the
    target pixel's ray at z-depth min(sight_clearance, pixel depth) (scene units) must project
    inside the source image, in front of the source camera (the stretch from there to the
    surface then lies inside the source's view too: both ends do, and the image is convex).
    Beside a camera that steps sideways or back, the nearby space at the leading edge was never
    in any earlier view: a surface may stand there (a tree the path comes past), but the far
    backdrop behind it, which barely moves, was seen and would be carried over it. Those pixels
    are left to the inpainter instead. Nearer than the clearance the cameras' surroundings count
    as free. None (the default) keeps every pixel (the plain z-buffer warp). Off by default for
    now: 2 units made a side walk's support views truer (26.8 dB against the offline truth
    instead of 25.0) and its scene.ply better (27.3 against 25.8 dB over 60 views), but each view
    inpaints 19 % of its pixels instead of 7 %, so more of it rests on aligned depth, and on the
    300-view benchmark's walk the new content's depth shrank until it collapsed after view 190
    (scene.ply 22.3 dB; seconds per view 11.6 at view 100, 18.2 at view 300, where without the
    rule they were 7.8 and 6.8; BENCHMARKS.md, docs/design.md). That shrink was the offline depth
    prior's noise image, one for every camera until 2026-12-08. With the backdrop carried as
    directions (``backdrop_at_infinity``, warped from the target camera's own centre) the rule
    does not act on the sky; with both on, a 60-view walk's scene.ply scored 25.2 dB against
    26.4 with the directions alone."""
    backdrop_at_infinity: bool = True
    """Warping support views into a camera (pipeline/local_frame.py): carry their backdrop
    pixels (ViewRecord.backdrop, the sky) as directions, infinitely far, so they move with the
    camera's rotation only, instead of as points at their stand-in depth, which slide across
    the sky as the camera walks. The inpainter's new sky is a function of direction (a sky
    has no parallax), so a walk's support skies then agree with one another and with a sky
    shell far away (DistillConfig.sky_parallax_pixels); carried at the stand-in depth, the sky
    of view k was view 0's sky shifted by the walk's parallax beside freshly inpainted sky,
    and no single shell fitted both. The surfaces are warped as before and stay in front.
    Measured on a 60-view side walk: scene.ply 26.4 dB against 26.1 dB, the sky's squared error
    0.0065 against 0.0091 (BENCHMARKS.md, issue 23). Carried as directions the sky is never new
    to a view, so the progressive loop grows Gaussians on the carried sky wherever the scene's
    render before the view leaves it uncovered (pipeline/generate.py ``pixels_to_grow``); without
    that, on the 300-view walk, 80 units from where the sky Gaussians were made, the fit of each
    view fell to 13-20 dB (24-39 dB with the warp at the stand-in depth). With it, and the
    distillation's 5 steps per view, the 60-view walk's scene.ply scored 27.76 dB against 27.28
    with False (114.8k Gaussians against 118.9k); the make-run scene (a lookaround: one camera
    centre) is unchanged, 30.95 dB. False: the sky is warped as points at its stand-in depth."""
    same_surface_margin: float | None = 0.05
    """Warping several support views into one camera: a later view's pixel replaces an earlier
    (better overlapping) view's only when it is nearer by more than this fraction of the
    earlier depth (a surface in front); within it both show the same surface and the earlier
    view's copy stays. None: plain nearest-wins z-buffer, which among copies of one surface
    keeps the one whose depth error is most negative at every pixel, so the carried depth
    shrinks a little with every step of a walk."""

