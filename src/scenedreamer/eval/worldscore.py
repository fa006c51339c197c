"""WorldScore-style objective aspects computed on a CPU (docs/usage/eval.md "WorldScore").

WorldScore (Duan et al., ICCV 2025, github.com/haoyi-duan/WorldScore) scores a generated world's
frames on, among others, camera control, 3D consistency and photometric consistency. Its code
uses DROID-SLAM (CUDA) and RAFT flow (checkpoints); here the same figures come from public CPU
tools:

- camera control: the frames' poses by structure from motion (pycolmap, intrinsics fixed to the
  known K), a similarity transform aligning the estimated poses to the
  requested ones (rotation: chordal mean; scale and shift: least squares), then per frame the rotation error (degrees, geodesic angle between requested
  and aligned estimated rotation) and the translation error (distance between the centres,
  divided by the requested path's extent so that it has no unit);
- 3D consistency: the mean reprojection error (pixels) of the reconstruction's tracks;
- photometric consistency: forward-backward optical-flow error between consecutive frames (DIS
  flow A->B and B->A; mean over pixels of |f_ab(x) + f_ba(x + f_ab(x))| in pixels).

Each raw figure maps to 0-100 by ``score_0_100`` with the bounds in ``WorldScoreConfig``.
Images (H, W, 3) float in [0, 1]; cameras OpenCV c2w (docs/conventions.md).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from ..errors import UserInputError


@dataclass(frozen=True)
class WorldScoreConfig:
    """Tunables of the WorldScore-style metrics and their 0-100 normalisation.

    WorldScore normalises every raw metric z linearly between an empirical best and worst value
    and clips to [0, 1] (then x100); the bounds below are ours (see docs/usage/eval.md: the
    official constants could not be read here), chosen as "perfect" and "useless" for our
    renders.
    """

    rotation_err_worst_deg: float = 10.0
    """Mean rotation error (degrees) that scores 0 (a camera pointing 10 degrees off is useless
    for control)."""
    translation_err_worst: float = 0.2
    """Mean centre error as a fraction of the path extent that scores 0."""
    reprojection_err_worst_px: float = 2.0
    """Mean reprojection error (pixels) that scores 0 (SfM on clean frames is well under 1 px)."""
    flow_fb_err_worst_px: float = 3.0
    """Mean forward-backward flow error (pixels) that scores 0."""
    max_features: int = 4096
    """SIFT features per frame for the reconstruction."""
    min_registered: int = 3
    """Fewer registered frames than this: camera control and 3D consistency are unavailable."""
    seed: int = 0
    """pycolmap's random seed (reproducible reconstructions)."""
    match_overlap: int = 10
    """Each frame is matched with the next ``match_overlap`` frames and with those 2^k ahead for
    k < ``match_overlap`` (COLMAP's sequential matcher with quadratic overlap): a path's frames
    are ordered, so its neighbours hold the matches, and the power-of-two jumps (16, 32 ahead at
    the default) keep long-range links for paths that return. 0, or a path of at most
    ``match_overlap`` + 1 frames, matches every pair (exhaustive, the slow twin): 1770 pairs for
    60 frames against ~620."""


def score_0_100(raw: float, worst: float, best: float = 0.0) -> float:
    """Linear map of a lower-is-better raw figure: ``best`` -> 100, ``worst`` -> 0, clipped."""
    if not math.isfinite(raw):
        return 0.0
    return float(100.0 * min(max((worst - raw) / (worst - best), 0.0), 1.0))


def _gray_u8(image: Tensor) -> np.ndarray:
    import cv2

    rgb = (image.detach().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def dis_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """OpenCV DIS flow (medium preset) from grey uint8 (H, W) image a to b: (H, W, 2) pixels."""
    import cv2

    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(a, b, None)


def forward_backward_flow_error(frame_a: Tensor, frame_b: Tensor) -> float:
    """Photometric consistency of two frames (H, W, 3) in [0, 1]: mean over pixels of A whose
    forward flow lands inside B of |f_ab(x) + f_ba(x + f_ab(x))| in pixels (0 for a flow field
    that is its own inverse; flicker and swimming texture break it). nan if none lands inside."""
    import cv2

    ga, gb = _gray_u8(frame_a), _gray_u8(frame_b)
    fwd, bwd = dis_flow(ga, gb), dis_flow(gb, ga)
    H, W = ga.shape
    xs, ys = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    map_x, map_y = xs + fwd[..., 0], ys + fwd[..., 1]
    # bilinear lookup of the backward flow at the forward flow's landing points
    back = cv2.remap(bwd, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = (map_x >= 0) & (map_x <= W - 1) & (map_y >= 0) & (map_y <= H - 1)
    if not inside.any():
        return float("nan")
    return float(np.linalg.norm(fwd + back, axis=-1)[inside].mean())


def rotation_angle_deg(Ra: np.ndarray, Rb: np.ndarray) -> float:
    """Geodesic angle in degrees between two 3x3 rotations."""
    R = Ra.T @ Rb
    # atan2 of the rotation's sine and cosine parts: accurate near 0, where arccos is not
    sin = 0.5 * np.linalg.norm([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    return float(np.degrees(np.arctan2(sin, (np.trace(R) - 1) / 2)))


def pose_errors(estimated_c2w: np.ndarray, requested_c2w: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-frame (rotation error degrees, translation error / path extent) after aligning the
    estimated poses to the requested ones with a similarity transform.

    The rotation of the alignment is the chordal mean of R_req_i R_est_i^T (well defined for
    any path, also a straight line where the camera centres alone leave a roll about the line
    free); scale and translation then minimise the centres' squared distances.
    estimated_c2w, requested_c2w: (N, 4, 4) OpenCV c2w of the same N frames, N >= 1."""
    R_sum = sum(q[:3, :3] @ e[:3, :3].T for e, q in zip(estimated_c2w, requested_c2w))
    U, _, Vt = np.linalg.svd(R_sum)
    R = U @ np.diag([1.0, 1.0, np.linalg.det(U @ Vt)]) @ Vt
    est_c, req_c = estimated_c2w[:, :3, 3] @ R.T, requested_c2w[:, :3, 3]
    xe, xq = est_c - est_c.mean(0), req_c - req_c.mean(0)
    norm = float((xe ** 2).sum())
    s = float((xe * xq).sum()) / norm if norm > 1e-18 else 1.0
    t = req_c.mean(0) - s * est_c.mean(0)
    extent = float(np.linalg.norm(xq, axis=1).max())
    rot, trans = [], []
    for e, q, c in zip(estimated_c2w, requested_c2w, est_c):
        rot.append(rotation_angle_deg(R @ e[:3, :3], q[:3, :3]))
        err = float(np.linalg.norm(s * c + t - q[:3, 3]))
        trans.append(err / extent if extent > 1e-9 else 0.0)
    return rot, trans


@dataclass
class Reconstruction:
    """What structure from motion made of the frames.

    registered: indices of the frames that got a pose; c2w: (len(registered), 4, 4) their
    estimated OpenCV c2w (arbitrary similarity frame); reprojection_error_px: mean over the
    tracks' observations; points: number of 3D points; reason: why it failed ("" if not)."""

    registered: list[int]
    c2w: np.ndarray
    reprojection_error_px: float
    points: int
    reason: str = ""


def _require_pycolmap():
    try:
        import pycolmap
    except ImportError:
        raise UserInputError("eval --worldscore: needs pycolmap; install it with "
                             "`pip install 'scenedreamer[worldscore]'` (or pycolmap==4.2.1)") from None
    return pycolmap


def reconstruct(frames: list[np.ndarray], K: np.ndarray, config: WorldScoreConfig = WorldScoreConfig()) -> Reconstruction:
    """Structure from motion of grey-or-RGB uint8 frames (H, W[, 3]) sharing intrinsics K (3x3
    pixels; kept fixed). Works in a temporary folder; returns the largest model."""
    import cv2

    pycolmap = _require_pycolmap()
    with tempfile.TemporaryDirectory(prefix="scenedreamer-sfm-") as tmp:
        tmp = Path(tmp)
        (tmp / "images").mkdir()
        names = []
        for i, frame in enumerate(frames):
            names.append(f"{i:05d}.png")
            img = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(tmp / "images" / names[-1]), img)
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "PINHOLE"
        reader.camera_params = ",".join(str(float(v)) for v in (K[0, 0], K[1, 1], K[0, 2], K[1, 2]))
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.sift.max_num_features = config.max_features
        extraction.use_gpu = False
        extraction.num_threads = 1
        pycolmap.extract_features(tmp / "db.db", tmp / "images", camera_mode=pycolmap.CameraMode.SINGLE,
                                  reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu)
        _match(pycolmap, tmp / "db.db", len(frames), config.match_overlap)
        options = pycolmap.IncrementalPipelineOptions()
        options.ba_refine_focal_length = False
        options.ba_refine_principal_point = False
        options.ba_refine_extra_params = False
        options.random_seed = config.seed
        options.num_threads = 1
        options.multiple_models = False
        (tmp / "sparse").mkdir()
        models = pycolmap.incremental_mapping(tmp / "db.db", tmp / "images", tmp / "sparse", options)
    if not models:
        return Reconstruction([], np.zeros((0, 4, 4)), float("nan"), 0,
                              "no two frames could be registered (too few matching features)")
    model = max(models.values(), key=lambda m: m.num_reg_images())
    registered, poses = [], []
    for image in model.images.values():
        if not image.has_pose:
            continue
        w2c = np.eye(4)
        w2c[:3, :] = image.cam_from_world().matrix()
        registered.append(names.index(image.name))
        poses.append(np.linalg.inv(w2c))
    order = np.argsort(registered)
    return Reconstruction([registered[i] for i in order], np.stack([poses[i] for i in order]),
                          float(model.compute_mean_reprojection_error()), model.num_points3D())


def _match(pycolmap, database: Path, frames: int, overlap: int) -> None:
    """Match the frames' features into ``database``: sequential with quadratic overlap when
    ``overlap`` leaves pairs out, else every pair."""
    if overlap <= 0 or overlap >= frames - 1:
        pycolmap.match_exhaustive(database, device=pycolmap.Device.cpu)
        return
    pairing = pycolmap.SequentialPairingOptions()
    pairing.overlap = overlap
    pairing.quadratic_overlap = True
    pairing.loop_detection = False  # needs a vocabulary tree (a download)
    pycolmap.match_sequential(database, pairing_options=pairing, device=pycolmap.Device.cpu)


@dataclass
class WorldScoreFigures:
    """The three aspects of one frame sequence, raw and 0-100.

    rotation_err_deg / translation_err: per registered frame; reprojection_err_px: one value;
    flow_fb_err_px: per consecutive pair. registered / total: frames that got a pose.
    camera_reason / consistency_reason: why those are unavailable ("" if available)."""

    rotation_err_deg: list[float]
    translation_err: list[float]
    reprojection_err_px: float
    flow_fb_err_px: list[float]
    registered: int
    total: int
    camera_control: float | None
    consistency_3d: float | None
    photometric: float | None
    camera_reason: str = ""


def worldscore_figures(frames: list[np.ndarray], requested_c2w: np.ndarray, K: np.ndarray,
                       config: WorldScoreConfig = WorldScoreConfig()) -> WorldScoreFigures:
    """The WorldScore-style aspects of RGB uint8 frames (H, W, 3) rendered at the requested
    OpenCV c2w (N, 4, 4) with intrinsics K (3x3 pixels).

    camera control score = mean of the rotation and translation scores (WorldScore combines its
    two camera errors into one aspect); 3D consistency score from the reprojection error;
    photometric score from the mean forward-backward flow error."""
    import torch

    flows = [forward_backward_flow_error(torch.from_numpy(a).float() / 255, torch.from_numpy(b).float() / 255)
             for a, b in zip(frames[:-1], frames[1:])]
    finite = [f for f in flows if math.isfinite(f)]
    photometric = score_0_100(float(np.mean(finite)), config.flow_fb_err_worst_px) if finite else None
    rec = reconstruct(frames, K, config)
    n = len(rec.registered)
    if n < config.min_registered:
        why = rec.reason or "too few matching features"
        return WorldScoreFigures([], [], float("nan"), flows, n, len(frames), None, None, photometric,
                                 f"{n} of {len(frames)} frames registered (need {config.min_registered}): {why}")
    rot, trans = pose_errors(rec.c2w, requested_c2w[rec.registered])
    camera = 0.5 * (score_0_100(float(np.mean(rot)), config.rotation_err_worst_deg)
                    + score_0_100(float(np.mean(trans)), config.translation_err_worst))
    return WorldScoreFigures(rot, trans, rec.reprojection_error_px, flows, n, len(frames), camera,
                             score_0_100(rec.reprojection_error_px, config.reprojection_err_worst_px), photometric)
