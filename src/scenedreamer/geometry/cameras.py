"""Pinhole cameras in OpenCV axes (+x right, +y down, +z forward).

Conventions (docs/conventions.md): ``c2w`` is the stored pose (camera-to-world, 4x4 float32);
``w2c`` is derived. ``K`` is 3x3 in pixels; pixel (i, j) (row i, column j) has its centre at
(u, v) = (j + 0.5, i + 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Cameras:
    """A batch of B pinhole cameras sharing one image size.

    K: (B, 3, 3) intrinsics in pixels.
    c2w: (B, 4, 4) camera-to-world poses, OpenCV camera axes.
    width, height: image size in pixels (shared by the batch).
    """

    K: Tensor
    c2w: Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        K, c2w = self.K, self.c2w
        if K.ndim == 2:
            object.__setattr__(self, "K", K.unsqueeze(0))
        if c2w.ndim == 2:
            object.__setattr__(self, "c2w", c2w.unsqueeze(0))
        if self.K.shape[-2:] != (3, 3) or self.c2w.shape[-2:] != (4, 4):
            raise ValueError(f"Cameras: K must be (B,3,3) and c2w (B,4,4), got {tuple(self.K.shape)}, "
                             f"{tuple(self.c2w.shape)}")
        if self.K.shape[0] != self.c2w.shape[0]:
            raise ValueError(f"Cameras: batch sizes differ: K {self.K.shape[0]} vs c2w {self.c2w.shape[0]}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"Cameras: image size must be positive, got {self.width}x{self.height}")

    def __len__(self) -> int:
        return int(self.c2w.shape[0])

    def __getitem__(self, index: int | slice | Tensor) -> "Cameras":
        """Sub-batch; an int index keeps a batch dimension of 1."""
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        return Cameras(self.K[index], self.c2w[index], self.width, self.height)

    @property
    def device(self) -> torch.device:
        return self.c2w.device

    @property
    def w2c(self) -> Tensor:
        """(B, 4, 4) world-to-camera, the rigid inverse of c2w."""
        return rigid_inverse(self.c2w)

    @property
    def centers(self) -> Tensor:
        """(B, 3) camera centres in world coordinates."""
        return self.c2w[:, :3, 3]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Cameras":
        return Cameras(self.K.to(device=device, dtype=dtype), self.c2w.to(device=device, dtype=dtype),
                       self.width, self.height)

    @staticmethod
    def cat(cams: "list[Cameras]") -> "Cameras":
        """Concatenate batches with the same image size."""
        sizes = {(c.width, c.height) for c in cams}
        if len(sizes) != 1:
            raise ValueError(f"Cameras.cat: image sizes differ: {sorted(sizes)}")
        return Cameras(torch.cat([c.K for c in cams]), torch.cat([c.c2w for c in cams]),
                       cams[0].width, cams[0].height)

    def scaled(self, width: int, height: int) -> "Cameras":
        """The same cameras rendering at another resolution (K scaled per axis)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.clone()
        K[:, 0, :] *= sx
        K[:, 1, :] *= sy
        return Cameras(K, self.c2w, width, height)


def rigid_inverse(T: Tensor) -> Tensor:
    """Inverse of rigid transforms (..., 4, 4): [R t]^-1 = [R^T, -R^T t]."""
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    out = torch.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1.0
    return out


def intrinsics_from_fov(fov_x_deg: float, width: int, height: int, fov_y_deg: float | None = None,
                        dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """(3, 3) K from the horizontal field of view in degrees (square pixels unless fov_y given).

    Principal point at the image centre (width/2, height/2) in the pixel-centre convention.
    """
    if not 0.0 < fov_x_deg < 180.0:
        raise ValueError(f"field of view must be in (0, 180) degrees, got {fov_x_deg}")
    fx = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2)
    fy = fx if fov_y_deg is None else 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
    return torch.tensor([[fx, 0.0, width / 2], [0.0, fy, height / 2], [0.0, 0.0, 1.0]],
                        dtype=dtype, device=device)


def intrinsics_from_focal(fx: float, fy: float, cx: float, cy: float,
                          dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """(3, 3) K from focal lengths and principal point, all in pixels."""
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def pixel_grid(height: int, width: int, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """(H, W, 2) pixel-centre coordinates (u, v) = (j + 0.5, i + 0.5)."""
    v, u = torch.meshgrid(torch.arange(height, device=device, dtype=dtype) + 0.5,
                          torch.arange(width, device=device, dtype=dtype) + 0.5, indexing="ij")
    return torch.stack([u, v], dim=-1)


def camera_rays(cameras: Cameras) -> tuple[Tensor, Tensor]:
    """World-space rays through every pixel centre.

    Returns origins (B, H, W, 3) and directions (B, H, W, 3). Directions are scaled so that
    their camera-frame z component is 1: a point at z-depth d is ``origin + d * direction``
    (ray length ``ray_dist = d * |direction|``).
    """
    B, H, W = len(cameras), cameras.height, cameras.width
    uv = pixel_grid(H, W, device=cameras.device, dtype=cameras.K.dtype)           # (H, W, 2)
    uv1 = torch.cat([uv, torch.ones_like(uv[..., :1])], dim=-1)                    # (H, W, 3)
    K_inv = torch.linalg.inv(cameras.K)                                            # (B, 3, 3)
    d_cam = torch.einsum("bij,hwj->bhwi", K_inv, uv1)                              # (B, H, W, 3), z = 1
    R = cameras.c2w[:, :3, :3]
    d_world = torch.einsum("bij,bhwj->bhwi", R, d_cam)
    origins = cameras.c2w[:, None, None, :3, 3].expand(B, H, W, 3)
    return origins, d_world


# The only axis flip between OpenCV (+y down, +z forward) and OpenGL/nerfstudio/three.js camera
# axes (+y up, +z backward): negate the camera's y and z axes. It is its own inverse.
_FLIP_YZ = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))


def opencv_to_opengl_c2w(c2w: Tensor) -> Tensor:
    """(..., 4, 4) camera-to-world with OpenCV camera axes -> the same pose with OpenGL axes."""
    return c2w @ _FLIP_YZ.to(device=c2w.device, dtype=c2w.dtype)


def opengl_to_opencv_c2w(c2w: Tensor) -> Tensor:
    """(..., 4, 4) camera-to-world with OpenGL camera axes -> OpenCV axes (inverse of the above)."""
    return c2w @ _FLIP_YZ.to(device=c2w.device, dtype=c2w.dtype)


# --------------------------------------------------------------------------------------------
# Additions (poses from geometry, conversions, intrinsics helpers)
# --------------------------------------------------------------------------------------------

def c2w_to_w2c(c2w: Tensor) -> Tensor:
    """(..., 4, 4) camera-to-world -> world-to-camera (rigid inverse). Frames: world <-> camera."""
    return rigid_inverse(c2w)


def w2c_to_c2w(w2c: Tensor) -> Tensor:
    """(..., 4, 4) world-to-camera -> camera-to-world (rigid inverse)."""
    return rigid_inverse(w2c)


def pose_from_rotation_translation(R: Tensor, t: Tensor) -> Tensor:
    """(..., 4, 4) rigid transform from rotation R (..., 3, 3) and translation t (..., 3)."""
    out = torch.zeros(*R.shape[:-2], 4, 4, dtype=R.dtype, device=R.device)
    out[..., :3, :3] = R
    out[..., :3, 3] = t
    out[..., 3, 3] = 1.0
    return out


# The default "up" of the world: the first camera's frame uses OpenCV axes (+y down), so the
# world's up direction is -y.
WORLD_UP_OPENCV = (0.0, -1.0, 0.0)


def look_at(eye: Tensor, target: Tensor, up: Tensor | tuple[float, float, float] = WORLD_UP_OPENCV,
            eps: float = 1e-9) -> Tensor:
    """Camera-to-world poses (..., 4, 4), OpenCV axes, for cameras at ``eye`` looking at ``target``.

    eye, target: (..., 3) world points (broadcast together); up: (3,) or (..., 3) world up
    direction (default -y: the first camera's frame is OpenCV, so up is -y). The camera's +z
    points from eye to target, its +x is horizontal (perpendicular to up) pointing right, and
    its +y (image down) has a negative component along ``up``.
    Raises ValueError when the viewing direction is parallel to ``up`` (roll is undefined).
    """
    eye, target = torch.broadcast_tensors(eye, target)
    up_t = torch.as_tensor(up, dtype=eye.dtype, device=eye.device).expand_as(eye)
    forward = target - eye
    forward = forward / forward.norm(dim=-1, keepdim=True).clamp_min(eps)
    right = torch.linalg.cross(forward, up_t, dim=-1)
    right_norm = right.norm(dim=-1, keepdim=True)
    if bool((right_norm < 1e-6).any()):
        raise ValueError("look_at: viewing direction is parallel to the up vector (roll undefined)")
    right = right / right_norm
    down = torch.linalg.cross(forward, right, dim=-1)
    R = torch.stack([right, down, forward], dim=-1)        # columns are the camera axes in world
    return pose_from_rotation_translation(R, eye)


def rotation_error(R: Tensor) -> Tensor:
    """(...,) max |R^T R - I| entry plus |det R - 1|: 0 for a proper rotation (...,3,3)."""
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    ortho = (R.transpose(-1, -2) @ R - eye).abs().amax(dim=(-1, -2))
    return ortho + (torch.linalg.det(R) - 1.0).abs()


def fov_from_intrinsics(K: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """Horizontal and vertical field of view in degrees, each (...,), of K (..., 3, 3).

    Assumes the principal point is at the image centre (the FOV of a centred pinhole).
    """
    fov_x = torch.rad2deg(2 * torch.atan(0.5 * width / K[..., 0, 0]))
    fov_y = torch.rad2deg(2 * torch.atan(0.5 * height / K[..., 1, 1]))
    return fov_x, fov_y


def cameras_from_fov(c2w: Tensor, width: int, height: int, fov_x_deg: float) -> Cameras:
    """A Cameras batch with the same centred intrinsics (horizontal FOV in degrees) for every c2w.

    c2w: (B, 4, 4) OpenCV camera-to-world; K follows its dtype and device.
    """
    K = intrinsics_from_fov(fov_x_deg, width, height, dtype=c2w.dtype, device=c2w.device)
    return Cameras(K.expand(c2w.shape[0], 3, 3).clone(), c2w, width, height)
