"""A view of the support database: what the 3D representation is trained on."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..geometry.cameras import Cameras


class Provenance(enum.Enum):
    """Where a support view came from."""

    INITIAL = "initial"            # text-to-image first view
    WARP_INPAINT = "warp_inpaint"  # forward warp of known views + inpainting (+ aligned depth)
    REFINED = "refined"            # 3D-aware generative refinement of a render


@dataclass(frozen=True)
class ViewRecord:
    """One support view (all tensors on the CPU).

    rgb: (H, W, 3) float32 in [0, 1].
    depth: (H, W) float32 z-depth in scene units (0 where unknown).
    valid: (H, W) bool, True where rgb/depth are known content (to train on).
    inpainted: (H, W) bool, True where content was generated (inpainted/refined) rather than
        carried over from earlier views.
    backdrop: (H, W) bool, True where the pixel shows the backdrop (sky): no surface within the
        scene's far limit. Its depth is a stand-in (the offline world's far plane, a network's
        far value), not a surface: fusion and collision leave these pixels out; distillation
        puts them on its sky shell. The one definition of sky for every consumer (distillation,
        mesh, render, the nerfstudio export, eval); docs/design.md "The backdrop". Left out
        (None) it becomes all False: no pixel is backdrop.
    K: (3, 3) intrinsics in pixels; c2w: (4, 4) camera-to-world (OpenCV axes).
    provenance, step (pipeline step that made it), prompt.
    view_id: assigned by the database on insert (-1 before).
    """

    rgb: Tensor
    depth: Tensor
    valid: Tensor
    inpainted: Tensor
    K: Tensor
    c2w: Tensor
    provenance: Provenance
    step: int
    prompt: str
    view_id: int = -1
    extra: dict = field(default_factory=dict)
    backdrop: Tensor | None = None

    def __post_init__(self) -> None:
        # None means "no backdrop": give every record a mask so readers need no special case
        # (a non-tensor rgb is left for the storage checks to report)
        if self.backdrop is None and isinstance(self.rgb, Tensor) and self.rgb.ndim >= 2:
            object.__setattr__(self, "backdrop", torch.zeros(self.rgb.shape[:2], dtype=torch.bool,
                                                             device=self.rgb.device))

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def camera(self) -> Cameras:
        """This view's camera as a batch of 1."""
        return Cameras(self.K, self.c2w, self.width, self.height)
