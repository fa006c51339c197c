"""The active set of a long world: which support views and Gaussians a step works on.

Past ``progressive.active_after_views`` support views, a step of the progressive loop no longer
touches the whole world (issue 23 item 4). Before the step's render, ``activate``:

1. picks the active views: the new camera's ``progressive.active_views`` best-overlapping
   support views (SupportDatabase.neighbours, the same ranking the local frame uses);
2. builds the region they and the new camera see (representation/active_region.py: each frustum
   to 1.05 x the deepest content of its view, widened by ``MARGIN``; the new camera reaches as
   deep as the deepest of them);
3. freezes every Gaussian of the in-memory scene whose ball lies outside the region (written to
   a chunk file with its Adam moments, representation/frozen_gaussians.py) and thaws every
   frozen one inside it.

The step then renders, fits (replay drawn from the active views and the new one only:
SupportDatabase.subset) and trains the adapter on the active set alone, so its cost depends on
what the cameras near it see, not on how large the world has grown. A Gaussian outside every
active frustum contributes nothing to those views' pixels, so fitting them on the active set
renders what the whole world would; what changes is that frozen Gaussians do not drift with
their Adam momentum while they are away. Only kinds whose size grows with the world keep a
frozen store (RepresentationKind.frozen_store); a NeRF's planes are fixed in size and always
fitted whole.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ..geometry.cameras import Cameras
from ..representation.active_region import frustum_planes, points_in_region
from ..representation.frozen_gaussians import SIGMAS
from .config import ProgressiveConfig

MARGIN = 0.15
"""Each active frustum is widened by this fraction of the image on every side: a Gaussian
centred just outside an image still spreads into it (its ball is tested too), and the patches
the fit cuts reach the image's edges."""
UNBOUNDED = 1e9
"""The far distance of a region that should reach everything in front of a camera."""
FAR_SLACK = 1.05
"""A frustum reaches this factor past the deepest valid depth of its view (depth noise)."""


def applies(config: ProgressiveConfig, views_in_world: int) -> bool:
    """Whether a step of a world with ``views_in_world`` support views uses an active set."""
    return config.active_views > 0 and views_in_world > config.active_after_views


def activate(state, database, camera: Cameras, config: ProgressiveConfig, step: int) -> list[int]:
    """Make ``state.representation`` the active set for the step whose camera is ``camera``
    (1 camera): freeze what the region misses into ``state.frozen``, thaw what it reaches;
    ``state.fit_state``'s Adam state follows its rows. Returns the active view ids (oldest first)."""
    ids = sorted(database.neighbours(camera, config.active_views))
    views = [database.get(i) for i in ids]
    far = [FAR_SLACK * float(v.depth[v.valid & (v.depth > 0)].max()) if bool((v.valid & (v.depth > 0)).any())
           else 0.0 for v in views]
    deepest = max(far + [0.0])
    cameras = Cameras.cat([v.camera for v in views] + [camera.to("cpu", torch.float32)])
    keep = [i for i, f in enumerate(far + [deepest]) if f > 0]
    if not keep:        # no view near the camera holds depth: nothing tells what it sees
        return ids
    cameras = Cameras(cameras.K[keep], cameras.c2w[keep], cameras.width, cameras.height)
    planes = frustum_planes(cameras, torch.tensor(far + [deepest])[keep], MARGIN)

    scene = state.representation
    with torch.no_grad():
        reach = SIGMAS * scene.log_scales.exp().amax(-1)
        outside = ~points_in_region(planes, scene.means.detach(), reach)
    fit_state = state.fit_state
    optimizer_state = None if fit_state is None else fit_state.optimizer_state
    optimizer_state = state.frozen.freeze(scene, optimizer_state, outside, step)
    optimizer_state = state.frozen.thaw(scene, optimizer_state, planes, step)
    if fit_state is not None:
        state.fit_state = replace(fit_state, optimizer_state=optimizer_state)
    return ids


def camera_region(camera: Cameras) -> torch.Tensor:
    """(1, 6, 4) planes of everything ``camera`` (1 camera) can see, however far
    (active_region.py; widened by MARGIN like an active frustum)."""
    return frustum_planes(camera.to("cpu", torch.float32), torch.tensor([UNBOUNDED]), MARGIN)
