"""View records <-> arrays <-> one file per view.

A view file is the view's arrays written one after another as standard ``.npy`` blobs (header +
raw data, no compression) into a single file: ``np.load`` called repeatedly on one open handle
reads them back, in the order the database row lists them. Uncompressed because a 512x512 view
is ~4.5 MB and compression would cost more time than the disk write; exact because the
representation trains on these arrays (PNGs are written only at export).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import UserInputError
from ..geometry.cameras import Cameras
from .records import Provenance, ViewRecord

# The fixed arrays of every view, in file order; tensors in ViewRecord.extra follow as "extra.<key>".
# Databases written before the backdrop mask existed lack "backdrop": decode_record derives it.
LEGACY_ARRAYS = ("rgb", "depth", "valid", "inpainted")
EXTRA_PREFIX = "extra."

# numpy dtypes a tensor in ViewRecord.extra may have (others, such as bfloat16, have no .npy form).
_STORABLE_KINDS = "biuf"


def camera_from_lists(K: list[list[float]], c2w: list[list[float]], width: int, height: int) -> Cameras:
    """A CPU float32 batch of 1 camera from the nested lists stored in a row."""
    return Cameras(torch.tensor(K, dtype=torch.float32), torch.tensor(c2w, dtype=torch.float32), width, height)


@dataclass(frozen=True)
class EncodedView:
    """A validated record split into what goes to the view file and what goes to the SQLite row.

    arrays: name -> numpy array, in file order (config.CORE_ARRAYS first).
    K, c2w: nested float lists (exact float32 values) for the row; width, height in pixels.
    extra_json: the JSON-serialisable part of ViewRecord.extra.
    depth_quantiles: the view's valid-depth quantiles (SupportConfig.overlap_depth_quantiles),
        or None when it has no valid positive depth.
    """

    arrays: dict[str, np.ndarray]
    K: list[list[float]]
    c2w: list[list[float]]
    width: int
    height: int
    provenance: Provenance
    step: int
    prompt: str
    extra_json: dict[str, Any]
    depth_quantiles: list[float] | None

    @property
    def camera(self) -> Cameras:
        """This view's camera as a CPU float32 batch of 1."""
        return camera_from_lists(self.K, self.c2w, self.width, self.height)


def _fail(what: str) -> NoReturn:
    raise UserInputError(f"support database add: {what}")


def _as_cpu(name: str, value: Any) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        _fail(f"ViewRecord.{name} must be a torch.Tensor, got {type(value).__name__}")
    return value.detach().cpu()


def encode_record(record: ViewRecord, rgb_storage_dtype: str, depth_quantiles: tuple[float, ...],
                  depth_stats_stride: int) -> EncodedView:
    """Check a ViewRecord (shapes, dtypes, value ranges) and convert it for storage.

    Raises UserInputError naming the offending field. rgb must be (H, W, 3) floating in [0, 1];
    depth (H, W) floating, finite, >= 0 (z-depth, scene units); valid / inpainted / backdrop
    (H, W) bool;
    K (3, 3) and c2w (4, 4) finite with c2w's last row (0, 0, 0, 1).
    ``depth_stats_stride``: every n-th pixel per axis is used for the depth quantiles.
    """
    if not isinstance(record, ViewRecord):
        _fail(f"expected a ViewRecord, got {type(record).__name__}")
    rgb_t = _as_cpu("rgb", record.rgb)
    if rgb_t.ndim != 3 or rgb_t.shape[2] != 3 or not rgb_t.is_floating_point():
        _fail(f"ViewRecord.rgb must be (H, W, 3) floating, got {tuple(rgb_t.shape)} {rgb_t.dtype}")
    height, width = int(rgb_t.shape[0]), int(rgb_t.shape[1])
    if height == 0 or width == 0:
        _fail(f"ViewRecord.rgb is empty ({height}x{width})")
    # Checks and casts in numpy (single-threaded): torch's intra-op threads make these
    # reductions 10x+ slower on a busy 2-core machine. Check in float32, then cast.
    rgb = rgb_t.to(torch.float32).numpy()
    lo, hi = rgb.min(), rgb.max()
    if not (0.0 <= lo and hi <= 1.0):  # also false for NaN
        _fail(f"ViewRecord.rgb must lie in [0, 1], got values in [{float(lo)}, {float(hi)}]")
    rgb = rgb.astype(np.dtype(rgb_storage_dtype), copy=False)

    depth_t = _as_cpu("depth", record.depth)
    if depth_t.shape != (height, width) or not depth_t.is_floating_point():
        _fail(f"ViewRecord.depth must be ({height}, {width}) floating, got {tuple(depth_t.shape)} "
              f"{depth_t.dtype}")
    depth = depth_t.to(torch.float32).numpy()
    lo, hi = depth.min(), depth.max()
    if not (0.0 <= lo and hi < np.inf):
        _fail(f"ViewRecord.depth must be finite and >= 0, got values in [{float(lo)}, {float(hi)}]")

    masks = {}
    for name in ("valid", "inpainted", "backdrop"):
        mask = _as_cpu(name, getattr(record, name))
        if mask.shape != (height, width) or mask.dtype != torch.bool:
            _fail(f"ViewRecord.{name} must be ({height}, {width}) bool, got {tuple(mask.shape)} {mask.dtype}")
        masks[name] = mask.numpy()

    K = _as_cpu("K", record.K).to(torch.float32)
    c2w = _as_cpu("c2w", record.c2w).to(torch.float32)
    if K.shape != (3, 3) or not bool(torch.isfinite(K).all()):
        _fail(f"ViewRecord.K must be a finite (3, 3) matrix, got {tuple(K.shape)}")
    if c2w.shape != (4, 4) or not bool(torch.isfinite(c2w).all()) or \
            c2w[3].tolist() != [0.0, 0.0, 0.0, 1.0]:
        _fail(f"ViewRecord.c2w must be a finite (4, 4) pose with last row (0, 0, 0, 1), got {c2w.tolist()}")
    if not isinstance(record.provenance, Provenance):
        _fail(f"ViewRecord.provenance must be a Provenance, got {record.provenance!r}")
    if not isinstance(record.step, int) or isinstance(record.step, bool):
        _fail(f"ViewRecord.step must be an int, got {record.step!r}")
    if not isinstance(record.prompt, str):
        _fail(f"ViewRecord.prompt must be a str, got {type(record.prompt).__name__}")

    arrays: dict[str, np.ndarray] = {
        "rgb": rgb,
        "depth": depth,
        **masks,
    }
    extra_json: dict[str, Any] = {}
    for key, value in dict(record.extra).items():
        if not isinstance(key, str):
            _fail(f"ViewRecord.extra keys must be str, got {key!r}")
        if isinstance(value, torch.Tensor):
            array = value.detach().cpu().numpy() if value.dtype != torch.bfloat16 else None
            if array is None or array.dtype.kind not in _STORABLE_KINDS:
                _fail(f"ViewRecord.extra[{key!r}] has dtype {value.dtype}, which cannot be stored")
            arrays[EXTRA_PREFIX + key] = array
        else:
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError):
                _fail(f"ViewRecord.extra[{key!r}] must be a tensor or JSON-serialisable, got "
                      f"{type(value).__name__}")
            extra_json[key] = value

    return EncodedView(
        arrays=arrays, K=K.tolist(), c2w=c2w.tolist(), width=width, height=height,
        provenance=record.provenance, step=record.step, prompt=record.prompt,
        extra_json=extra_json,
        depth_quantiles=valid_depth_quantiles(arrays["depth"], masks["valid"], depth_quantiles,
                                              depth_stats_stride))


def valid_depth_quantiles(depth: np.ndarray, valid: np.ndarray, quantiles: tuple[float, ...],
                          stride: int) -> list[float] | None:
    """Quantiles of the positive depth at valid pixels, on a strided subsample (every ``stride``-th
    pixel per axis: they only choose sample depths for the overlap test). None if there is none."""
    sub_depth = depth[::stride, ::stride]
    sub_valid = valid[::stride, ::stride] & (sub_depth > 0)
    if not sub_valid.any():  # a tiny view or sparse depth: fall back to every pixel
        sub_depth, sub_valid = depth, valid & (depth > 0)
        if not sub_valid.any():
            return None
    return [float(q) for q in np.quantile(sub_depth[sub_valid], quantiles)]


def write_view_file(path: Path, arrays: dict[str, np.ndarray], fsync: bool) -> int:
    """Write ``arrays`` (in order) as consecutive .npy blobs to ``path`` atomically (temp file
    in the same folder, then rename): a reader or a killed writer sees the whole file or none.

    fsync: also flush the data to the disk before the rename (atomic.atomic_path); without it
    the file survives a killed process (the kernel holds the data) but not a power cut until
    ``fsync_files`` runs. Returns the file size in bytes.
    """
    context = atomic_path(path, fsync=fsync)
    with context as tmp:
        with open(tmp, "wb") as fh:
            for array in arrays.values():
                np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
    return os.stat(path).st_size


def fsync_paths(paths: list[Path]) -> None:
    """fsync each existing file of ``paths`` (data written without fsync becomes power-cut safe)."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # dropped by truncate_after_step in the meantime
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_view_file(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Read the arrays written by write_view_file; ``names`` as stored in the row, in order."""
    with open(path, "rb") as fh:
        return {name: np.load(fh, allow_pickle=False) for name in names}


@dataclass(frozen=True)
class ViewInfo:
    """What the database keeps in memory per view (the SQLite row, parsed): no pixel data.

    file: view file name inside the views folder; file_bytes: its exact size.
    array_names: the arrays in the file, in order.
    K (3x3), c2w (4x4): nested float lists; width, height: pixels.
    depth_quantiles: valid-depth quantiles, or None when the view has no valid depth.
    """

    view_id: int
    file: str
    file_bytes: int
    array_names: list[str]
    width: int
    height: int
    K: list[list[float]]
    c2w: list[list[float]]
    provenance: Provenance
    step: int
    prompt: str
    extra_json: dict[str, Any]
    depth_quantiles: list[float] | None

    @property
    def camera(self) -> Cameras:
        """This view's camera as a CPU float32 batch of 1."""
        return camera_from_lists(self.K, self.c2w, self.width, self.height)


def legacy_backdrop(depth: np.ndarray, legacy_depth: float) -> np.ndarray:
    """(H, W) bool backdrop of a view stored before the mask existed: depth (H, W) z-depth at
    or beyond ``legacy_depth`` (SupportConfig.legacy_backdrop_depth, set from the far value the
    offline world gave its sky). An approximation (about 98 % of pixels agree with the exact
    sky, see that field): new runs store the exact mask."""
    return depth >= legacy_depth


def decode_record(view_id: int, arrays: dict[str, np.ndarray], row: ViewInfo,
                  legacy_backdrop_depth: float = float("inf")) -> ViewRecord:
    """A ViewRecord from a view file's arrays and its row; rgb always comes back float32. A view
    stored without a backdrop mask (an older database) gets ``legacy_backdrop`` of its depth."""
    extra: dict[str, Any] = dict(row.extra_json)
    for name, array in arrays.items():
        if name.startswith(EXTRA_PREFIX):
            extra[name[len(EXTRA_PREFIX):]] = torch.from_numpy(array)
    backdrop = arrays["backdrop"] if "backdrop" in arrays else \
        legacy_backdrop(arrays["depth"], legacy_backdrop_depth)
    return ViewRecord(
        rgb=torch.from_numpy(arrays["rgb"]).to(torch.float32),
        depth=torch.from_numpy(arrays["depth"]),
        valid=torch.from_numpy(arrays["valid"]),
        inpainted=torch.from_numpy(arrays["inpainted"]),
        K=torch.tensor(row.K, dtype=torch.float32),
        c2w=torch.tensor(row.c2w, dtype=torch.float32),
        provenance=row.provenance, step=row.step, prompt=row.prompt, view_id=view_id, extra=extra,
        backdrop=torch.from_numpy(np.ascontiguousarray(backdrop)))
