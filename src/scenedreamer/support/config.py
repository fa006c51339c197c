"""Tunables of the support database (storage, neighbour search, replay, nerfstudio export)."""

from __future__ import annotations

from dataclasses import dataclass

CORE_ARRAYS = ("rgb", "depth", "valid", "inpainted", "backdrop")
"""The per-view arrays every view file holds (support/storage.py; here, without torch, because the
disk estimate of ``generate --dry-run`` sizes them)."""


@dataclass(frozen=True)
class SupportConfig:
    """How the support database stores, ranks, replays and exports its views."""

    # --- storage -------------------------------------------------------------------------
    rgb_storage_dtype: str = "float32"
    """dtype of rgb in the view files: "float32" (exact round trip) or "float16" (half the disk
    and write time; values come back as float32 within 2^-11 of the original)."""

    fsync: bool = False
    """False (group commit): add() returns once the view survives a killed process (the kernel
    holds the writes); SupportDatabase.sync() makes everything added so far survive a power cut
    too (call it before writing anything that refers to the views, such as a checkpoint).
    True: fsync each view file and the views folder before its row commits and run SQLite with
    synchronous=FULL, so every add() is power-cut safe on return (~3 fsyncs per view: slower)."""

    # --- backdrop (sky) -------------------------------------------------------------------------
    backdrop_depth: float | None = None
    """Where the depth prior does not mark the backdrop itself (a depth network without a far
    class), pixels of a new view whose final z-depth is >= this (scene units) are recorded as
    backdrop: the scene's far distance. None: only what the depth prior marks (the offline
    world marks its sky exactly). See ViewRecord.backdrop and docs/design.md "The backdrop"."""

    legacy_backdrop_depth: float = 70.0
    """Views stored before the backdrop mask existed get backdrop = depth >= this (scene units).
    The offline world gave its sky depth 100 (ProceduralWorldConfig.sky_depth), but sky carried
    into later views by the warp, or aligned from corrupted depth, lands nearer: measured on a
    96x64 offline lookaround run of the previous release, 70 agrees with the world's exact sky
    on 97.5-99.9 % of each view's pixels, 100 on only 83-100 %."""

    # --- neighbours (frustum overlap, then pose distance) --------------------------------------
    overlap_grid: int = 16
    """The query camera's frustum is sampled at overlap_grid x overlap_grid pixel centres (of a
    coarse grid covering the whole image) times the depths below."""

    overlap_depth_quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    """Quantiles of each candidate view's own valid depth at which the query frustum is sampled
    (the candidate sees content at these distances). Stored per view when it is added."""

    depth_stats_stride: int = 4
    """The overlap quantiles are taken over every depth_stats_stride-th pixel per axis (they
    only choose sample depths, so a subsample is enough and keeps add() fast)."""

    fallback_depths: tuple[float, ...] = (1.0, 2.0, 4.0)
    """Sample depths (scene units) for a candidate view with no valid positive depth at all;
    same length as overlap_depth_quantiles."""

    rotation_weight: float = 1.0
    """Pose distance = camera-centre distance + rotation_weight * rotation angle (radians);
    scene units per radian. Breaks ties between equally overlapping views."""

    # --- replay ----------------------------------------------------------------------------
    replay_recent: int = 4
    """sample_replay default: how many of the most recently added views count as "recent"."""

    replay_recent_weight: float = 0.5
    """sample_replay default: total probability of drawing a recent view (the rest goes to the
    older views, uniform within each group)."""

    # --- nerfstudio export ------------------------------------------------------------------
    export_depth_unit: float = 1e-3
    """Scene units per count of the exported 16-bit depth PNGs: 1e-3 = millimetres if the scene
    is in metres (nerfstudio's default depth_unit_scale_factor). Depths beyond 65535 units are
    written as 0 (unknown) rather than clipped to a wrong value."""

    export_points: int = 200_000
    """At most this many coloured points (back-projected known depths, spread evenly over the
    views) in the dataset's points3D.ply, the ``ply_file_path`` splatfacto initialises from."""

    export_min_camera_spread: float = 1e-3
    """Camera centres spanning less than this fraction of the median known depth count as one
    centre (a rotation-only path): the export then warns that nerfstudio needs
    ``--auto-scale-poses False`` (its default divides by the camera spread)."""

    export_masks: bool = True
    """Also write masks/ (8-bit PNG, 255 where `valid`) and a mask_path per frame, so nerfstudio
    ignores unknown pixels."""

    def __post_init__(self) -> None:
        if self.rgb_storage_dtype not in ("float32", "float16"):
            raise ValueError(f"SupportConfig.rgb_storage_dtype must be 'float32' or 'float16', "
                             f"got {self.rgb_storage_dtype!r}")
        if self.overlap_grid < 1:
            raise ValueError(f"SupportConfig.overlap_grid must be >= 1, got {self.overlap_grid}")
        if len(self.overlap_depth_quantiles) == 0 or any(
                not 0.0 <= q <= 1.0 for q in self.overlap_depth_quantiles):
            raise ValueError("SupportConfig.overlap_depth_quantiles must be a non-empty tuple of "
                             f"values in [0, 1], got {self.overlap_depth_quantiles}")
        if len(self.fallback_depths) != len(self.overlap_depth_quantiles) or any(
                d <= 0 for d in self.fallback_depths):
            raise ValueError("SupportConfig.fallback_depths must hold one positive depth per "
                             f"overlap quantile, got {self.fallback_depths}")
        if self.depth_stats_stride < 1:
            raise ValueError(f"SupportConfig.depth_stats_stride must be >= 1, got {self.depth_stats_stride}")
        if self.rotation_weight < 0:
            raise ValueError(f"SupportConfig.rotation_weight must be >= 0, got {self.rotation_weight}")
        if self.replay_recent < 0 or not 0.0 <= self.replay_recent_weight <= 1.0:
            raise ValueError("SupportConfig: replay_recent must be >= 0 and replay_recent_weight in "
                             f"[0, 1], got {self.replay_recent}, {self.replay_recent_weight}")
        if self.backdrop_depth is not None and not self.backdrop_depth > 0:
            raise ValueError(f"SupportConfig.backdrop_depth must be > 0 or None, got {self.backdrop_depth}")
        if not self.legacy_backdrop_depth > 0:
            raise ValueError(f"SupportConfig.legacy_backdrop_depth must be > 0, got {self.legacy_backdrop_depth}")
        if self.export_depth_unit <= 0:
            raise ValueError(f"SupportConfig.export_depth_unit must be > 0, got {self.export_depth_unit}")
        if self.export_points < 1 or self.export_min_camera_spread < 0:
            raise ValueError("SupportConfig: export_points must be >= 1 and export_min_camera_spread >= 0, "
                             f"got {self.export_points}, {self.export_min_camera_spread}")
