"""Exports of a finished run that need more than scene.ply: a mesh and the nerfstudio dataset.

The library side of `scenedreamer export --format glb|nerfstudio` (docs/usage/export.md).
- ``mesh_from_run``: RUN/scene.ply rendered at every support camera with the reference 3DGS
  conventions, pixels farther than the sky cut-off (``export.mesh.far_depth`` of the support
  views' own depths, where sky has no depth) dropped, fused into a TSDF and meshed
  (``export.mesh``). Vertices stay in the run's world (OpenCV, +y down); the GLB writer's caller
  turns them to glTF's +y up.
- ``nerfstudio_from_run``: the support views as a nerfstudio dataset (transforms.json, images/,
  depths/), the same files a run writes with ``export.nerfstudio``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from ..atomic import check_writable_destination
from ..errors import UserInputError
from ..events import EventSink
from ..export.mesh import MeshConfig, TriangleMesh

NERFSTUDIO_NAMES = frozenset({"transforms.json", "images", "depths", "masks", "points3D.ply"})
"""What a nerfstudio export writes into its folder (so a forced re-export may replace only these)."""


def check_nerfstudio_folder(out: Path, force: bool) -> None:
    """Refuse (UserInputError) an output folder we may not write the dataset into; creates nothing.

    A new or empty folder is fine; one holding an earlier export (only the names above) needs
    ``force``; anything else is refused even with ``force``.
    """
    if str(out) in ("", "."):
        raise UserInputError("--out: give a new folder for the dataset")
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out}: exists and is not a folder")
    check_writable_destination(out, folder=True)
    if out.is_dir():
        names = {p.name for p in out.iterdir()}
        foreign = sorted(names - NERFSTUDIO_NAMES)
        if foreign:
            raise UserInputError(f"--out {out}: holds files a nerfstudio export does not write ({foreign[0]}, ...); "
                                 f"choose a new folder")
        if names and not force:
            raise UserInputError(f"--out {out}: already holds a dataset (use --force to replace it)")


def nerfstudio_from_run(root: Path, out: Path, on_event: EventSink | None = None) -> Path:
    """Write the run's support views into ``out`` as a nerfstudio dataset; returns transforms.json."""
    from ..config_io import load_config
    from ..support.database import SupportDatabase
    from .config import GenerateConfig

    # the run's own settings decide the depth unit and masks, as when the run wrote its dataset
    support = load_config(GenerateConfig, root / "config.json").support
    with SupportDatabase.open(root / "support", create=False, config=support) as db:
        return db.export_nerfstudio(out, on_event=on_event)


def mesh_from_run(root: Path, config: MeshConfig = MeshConfig(), device: torch.device | str = "cpu",
                  on_event: EventSink | None = None) -> TriangleMesh:
    """A vertex-coloured mesh of RUN/scene.ply (run's world, OpenCV axes), see the module docstring.

    Emits "render" events (one per support camera) and "mesh" events (one per fused view).
    Raises UserInputError when the run has no support view, no known depth, or no surface.
    """
    from ..export.mesh import extract_mesh, far_depth, render_for_fusion, tsdf_fuse
    from ..export.ply import read_gaussians_ply
    from ..geometry.cameras import Cameras
    from ..representation.distill import standard_viewer_config
    from ..support.database import SupportDatabase

    with SupportDatabase.open(root / "support", create=False) as db:
        views = [db.get(v) for v in db.ids()]
    if not views:
        raise UserInputError(f"{root}: the support database is empty, nothing to mesh")
    sizes = {(v.width, v.height) for v in views}
    width, height = max(sizes)
    cameras = Cameras(torch.stack([v.K.float() for v in views]), torch.stack([v.c2w.float() for v in views]),
                      views[0].width, views[0].height)
    if len(sizes) > 1:          # mixed sizes cannot share a batch: render all at the largest
        cameras = Cameras.cat([Cameras(v.K.float()[None], v.c2w.float()[None], v.width, v.height)
                               .scaled(width, height) for v in views])
    known_depths = torch.stack([_at_size(v.depth.float(), width, height) for v in views])
    known = torch.stack([_at_size(v.valid.float(), width, height) > 0.5 for v in views])
    cut = far_depth(known_depths, known, config)

    scene = read_gaussians_ply(root / "scene.ply", standard_viewer_config(), device=device)
    scene.eval()
    depths, colours, valid = render_for_fusion(scene, cameras.to(device), config, on_event)
    valid = valid & (depths <= cut)             # the sky shell is not a surface
    volume = tsdf_fuse(depths, colours, valid, cameras, config, on_event)
    return extract_mesh(volume, config)


def _at_size(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(H, W) map at (height, width), nearest neighbour (depth must not be blended across edges)."""
    if image.shape == (height, width):
        return image
    return torch.nn.functional.interpolate(image[None, None], size=(height, width), mode="nearest")[0, 0]


def mesh_config(voxel_size: float | None) -> MeshConfig:
    """The default MeshConfig with an optional voxel edge length (scene units; > 0)."""
    if voxel_size is not None and not voxel_size > 0:
        raise UserInputError(f"--voxel-size {voxel_size}: must be > 0 (scene units)")
    return replace(MeshConfig(), voxel_size=voxel_size)
