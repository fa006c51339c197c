"""Exports of a finished run that need more than scene.ply: a mesh and the nerfstudio dataset.

The library side of `scenedreamer export --format glb|nerfstudio` (docs/usage/export.md).
- ``mesh_from_run``: a mesh of what the support cameras saw: the support views' own depth and
  colour, backdrop (ViewRecord.backdrop) left out, meshed view by view where each added content
  (export/view_mesh.py) or fused into one TSDF (export/mesh.py, ``mesher="tsdf"``); the backdrop
  optionally as its own sheet. The same for Gaussian and NeRF runs: both keep their support
  database. Vertices stay in the run's world (OpenCV, +y down); the GLB writer's caller turns
  them to glTF's +y up.
- ``collider_from_run``: the walkable collider (export/collider.py) of that mesh, the ground
  under the trajectory's cameras and the spawn record (spawn.json).
- ``nerfstudio_from_run``: the support views as a nerfstudio dataset (transforms.json, images/,
  depths/), the same files a run writes with ``export.nerfstudio``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..atomic import check_writable_destination
from ..errors import UserInputError
from ..events import EventSink
from ..export.mesh import MeshConfig
from ..export.view_mesh import ColouredMesh

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


@dataclass(frozen=True)
class SceneMesh:
    """surface: what the cameras saw, backdrop excluded; backdrop: the backdrop on a sphere
    around the cameras, or None when not asked for (or the run has none)."""

    surface: ColouredMesh
    backdrop: ColouredMesh | None


def mesh_from_run(root: Path, config: MeshConfig = MeshConfig(), device: torch.device | str = "cpu",
                  on_event: EventSink | None = None, with_backdrop: bool = False) -> SceneMesh:
    """A vertex-coloured mesh of the run's support views (run's world, OpenCV axes), see the
    module docstring. Emits "mesh" events (one per view, or per TSDF block). Raises
    UserInputError when the run has no support view, nothing but backdrop, or no surface."""
    from ..support.database import SupportDatabase

    with SupportDatabase.open(root / "support", create=False) as db:
        views = [db.get(v) for v in db.ids()]
    if not views:
        raise UserInputError(f"{root}: the support database is empty, nothing to mesh")
    if not any(bool((v.valid & ~v.backdrop & (v.depth > 0)).any()) for v in views):
        raise UserInputError(f"{root}: every support pixel is backdrop (sky) or unknown: no surface to mesh")
    surface = _tsdf_mesh(views, config, device, on_event) if config.mesher == "tsdf" else \
        _view_mesh(views, config, on_event)
    if len(surface.faces) == 0:
        raise UserInputError(f"{root}: no surface found in the support views")
    return SceneMesh(surface, _backdrop_mesh(views, config) if with_backdrop else None)


def _new_pixels(view) -> torch.Tensor:
    """(H, W) bool pixels ``view`` added to the scene: all of the first view, the generated
    (inpainted) ones of the others (the rest were carried from earlier views by the warp)."""
    from ..support.records import Provenance

    if view.provenance is Provenance.INITIAL:
        return torch.ones_like(view.valid)
    return view.inpainted


def _view_mesh(views, config: MeshConfig, on_event: EventSink | None) -> ColouredMesh:
    from ..events import emit
    from ..export.view_mesh import view_region, view_surface

    parts = []
    for i, v in enumerate(views):
        region = view_region(_new_pixels(v), v.valid, v.backdrop, v.depth, config.views)
        parts.append(view_surface(v.rgb, v.depth, region, v.camera, config.views))
        emit(on_event, "mesh", step=i + 1, total=len(views), message=f"meshing view {i + 1}/{len(views)}")
    return ColouredMesh.concat(parts)


def _tsdf_mesh(views, config: MeshConfig, device, on_event: EventSink | None) -> ColouredMesh:
    from ..export.mesh import extract_mesh, tsdf_fuse
    from ..geometry.cameras import Cameras

    sizes = {(v.width, v.height) for v in views}
    width, height = max(sizes)
    # mixed sizes cannot share a batch: fuse every view at the largest (nearest neighbour)
    cameras = Cameras.cat([Cameras(v.K.float()[None], v.c2w.float()[None], v.width, v.height)
                           .scaled(width, height) for v in views])
    depths = torch.stack([_at_size(v.depth.float(), width, height) for v in views])
    colours = torch.stack([_at_size(c, width, height) for v in views for c in v.rgb.float().unbind(-1)])
    colours = colours.reshape(len(views), 3, height, width).permute(0, 2, 3, 1)
    known = torch.stack([_at_size((v.valid & ~v.backdrop).float(), width, height) > 0.5 for v in views])
    volume = tsdf_fuse(depths.to(device), colours.to(device), known.to(device), cameras, config, on_event)
    mesh = extract_mesh(volume, config)
    return ColouredMesh(mesh.vertices, mesh.faces, mesh.colours.astype("float32") / 255.0)


def _backdrop_mesh(views, config: MeshConfig) -> ColouredMesh | None:
    """The backdrop pixels each view added, on a sphere around the mean camera centre of radius
    backdrop_radius_factor x the farthest depth that is not backdrop; None if there is none."""
    from ..export.view_mesh import backdrop_sheet

    centre = torch.stack([v.c2w[:3, 3].float() for v in views]).mean(0)
    far = max(float(v.depth[~v.backdrop].max()) for v in views if bool((~v.backdrop).any()))
    radius = config.views.backdrop_radius_factor * far
    parts = [backdrop_sheet(v.rgb, _new_pixels(v) & v.valid & v.backdrop, v.camera, centre, radius, config.views)
             for v in views]
    mesh = ColouredMesh.concat(parts)
    return mesh if len(mesh.faces) else None


def _at_size(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(H, W) map at (height, width), nearest neighbour (depth must not be blended across edges)."""
    if image.shape == (height, width):
        return image
    return torch.nn.functional.interpolate(image[None, None], size=(height, width), mode="nearest")[0, 0]


def mesh_config(voxel_size: float | None, mesher: str = "views") -> MeshConfig:
    """The default MeshConfig with a mesher ("views" or "tsdf") and an optional TSDF voxel edge
    length (scene units; > 0; only with "tsdf")."""
    if voxel_size is not None and not voxel_size > 0:
        raise UserInputError(f"--voxel-size {voxel_size}: must be > 0 (scene units)")
    if voxel_size is not None and mesher != "tsdf":
        raise UserInputError(f"--voxel-size {voxel_size}: only for --mesher tsdf (the views mesher has no voxels)")
    return replace(MeshConfig(), voxel_size=voxel_size, mesher=mesher)


# first-view depth priors whose depth is metric: they fix the scene's scale at 1 unit per metre
METRIC_FIRST_VIEW = {"oracle-exact": "the procedural world's exact depth (its units are metres)"}


def scene_scale(root: Path) -> tuple[float | None, str]:
    """(scene units per metre or None, where that comes from) of a run, from its config.json:
    the first view's depth fixes the scene's scale (PriorsConfig.first_view_depth)."""
    from ..config_io import load_config
    from .config import GenerateConfig

    priors = load_config(GenerateConfig, root / "config.json").priors
    name = priors.first_view_depth or priors.depth
    if name in METRIC_FIRST_VIEW:
        return 1.0, METRIC_FIRST_VIEW[name]
    if name == "oracle" or name == "classical":
        return None, f"first-view depth {name!r} is not metric (its median depth was set): scale unknown"
    return 1.0, f"first-view depth network {name!r}, taken as metric (a relative network would make this wrong)"


def collider_from_run(root: Path, collider_name: str, config=None, on_event: EventSink | None = None):
    """(Collider, spawn record) of a finished run: ``mesh_from_run``'s surface (backdrop left out;
    runs stored before the mask existed get it derived, see SupportConfig.legacy_backdrop_depth)
    made a collider over the ground under the trajectory's and support views' cameras; the spawn
    record (export.collider.spawn_record) names ``collider_name``. Run's world inside the Collider,
    glTF +y up in the record."""
    import numpy as np

    from ..export.collider import ColliderConfig, build_collider, spawn_record
    from ..geometry.trajectory_io import read_transforms_json
    from ..support.database import SupportDatabase

    config = config or ColliderConfig()
    if not (root / "trajectory.json").is_file():
        raise UserInputError(f"{root}: run lacks trajectory.json (the camera path the spawn point is read from)")
    c2w = read_transforms_json(root / "trajectory.json").cameras.c2w.double().numpy()
    with SupportDatabase.open(root / "support", create=False) as db:
        support = [db.get(v).c2w.double().numpy() for v in db.ids()]
    centres = np.concatenate([c2w[:, :3, 3]] + [s[None, :3, 3] for s in support])
    surface = mesh_from_run(root, on_event=on_event).surface
    collider = build_collider(surface, centres, config)
    units, source = scene_scale(root)
    return collider, spawn_record(collider, c2w, collider_name, units, source)
