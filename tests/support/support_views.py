"""Deterministic tiny support views for the support-database tests (also used by the writer
subprocess of the crash test, so it must import nothing from pytest)."""

from __future__ import annotations

import math

import torch

from scenedreamer.geometry.cameras import intrinsics_from_fov
from scenedreamer.support import Provenance, ViewRecord


def random_pose(generator: torch.Generator) -> torch.Tensor:
    """(4, 4) float32 c2w: a random rotation (QR of a Gaussian matrix) and translation."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))          # unique QR -> a proper orthogonal matrix
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = q
    c2w[:3, 3] = torch.randn(3, generator=generator, dtype=torch.float64)
    return c2w.float()


def make_record(seed: int, height: int = 24, width: int = 32, step: int | None = None) -> ViewRecord:
    """A view whose every array is a function of ``seed`` (rgb, depth, masks, pose, metadata)."""
    g = torch.Generator().manual_seed(seed)
    valid = torch.rand(height, width, generator=g) > 0.2
    depth = (0.5 + 4.0 * torch.rand(height, width, generator=g)) * valid   # 0 where unknown
    return ViewRecord(
        rgb=torch.rand(height, width, 3, generator=g),
        depth=depth,
        valid=valid,
        inpainted=torch.rand(height, width, generator=g) > 0.7,
        K=intrinsics_from_fov(50.0 + seed % 20, width, height),
        c2w=random_pose(g),
        provenance=list(Provenance)[seed % len(Provenance)],
        step=seed // 2 if step is None else step,
        prompt=f"view {seed}: a forest lake at sunset, ünïcödé",
        backdrop=torch.rand(height, width, generator=g) > 0.6,
    )


def look_at_pose(centre: tuple[float, float, float], yaw_deg: float = 0.0) -> torch.Tensor:
    """(4, 4) float32 c2w (OpenCV axes) at ``centre``, looking along +z turned by ``yaw_deg``
    about the world y axis (positive yaw turns the view towards +x)."""
    yaw = math.radians(yaw_deg)
    rotation = torch.tensor([[math.cos(yaw), 0.0, math.sin(yaw)],
                             [0.0, 1.0, 0.0],
                             [-math.sin(yaw), 0.0, math.cos(yaw)]], dtype=torch.float64)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = rotation
    c2w[:3, 3] = torch.tensor(centre, dtype=torch.float64)
    return c2w.float()


def assert_same_record(got: ViewRecord, want: ViewRecord) -> None:
    """Exact equality of every stored field (view_id is not compared)."""
    for name in ("rgb", "depth", "valid", "inpainted", "backdrop", "K", "c2w"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype, (name, a.dtype, b.dtype)
        assert torch.equal(a, b), name
    assert (got.provenance, got.step, got.prompt) == (want.provenance, want.step, want.prompt)
