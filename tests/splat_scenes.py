"""Small synthetic Gaussian scenes for the splat-format tests."""

import torch

from scenedreamer.representation.gaussians import GaussianConfig, GaussianScene, points_extent


def random_scene(n: int = 300, degree: int = 3, seed: int = 0, offset=(0.0, 0.0, 4.0), size: float = 2.0,
                 sh_std: float = 0.05) -> GaussianScene:
    """n random Gaussians in a cube of side ``size`` around ``offset`` (our +y-down world), SH
    ``degree``, higher SH ~ N(0, sh_std) (trained 3DGS scenes have small higher-order SH)."""
    g = torch.Generator().manual_seed(seed)
    scene = GaussianScene(GaussianConfig(sh_degree=degree), num=n)
    with torch.no_grad():
        scene.means.copy_((torch.rand(n, 3, generator=g) - 0.5) * size + torch.tensor(offset))
        scene.log_scales.copy_(torch.log(torch.rand(n, 3, generator=g) * 0.1 * size + 0.01 * size))
        scene.quats.copy_(torch.randn(n, 4, generator=g))
        scene.opacity_logits.copy_(torch.randn(n, generator=g) * 2)
        scene.sh0.copy_(torch.randn(n, 1, 3, generator=g))
        scene.shN.copy_(torch.randn(n, scene.shN.shape[1], 3, generator=g) * sh_std)
        scene.scene_extent.fill_(points_extent(scene.means))
    return scene


def rotation_angle(qa: torch.Tensor, qb: torch.Tensor) -> torch.Tensor:
    """Angle (radians) between the rotations of quaternions (N, 4) qa and qb (any norm, any sign)."""
    qa = torch.nn.functional.normalize(qa.detach(), dim=-1)
    qb = torch.nn.functional.normalize(qb.detach(), dim=-1)
    return 2 * torch.acos((qa * qb).sum(-1).abs().clamp(max=1.0))
