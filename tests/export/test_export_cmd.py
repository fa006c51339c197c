"""`scenedreamer export`: y-up conversion matches a rotated scene; CLI writes/refuses through a subprocess."""

import subprocess
import sys

import torch

from scenedreamer.export.points import to_y_up
from scenedreamer.geometry.cameras import cameras_from_fov, look_at
from scenedreamer.representation.gaussians import GaussianConfig, GaussianScene


def _scene() -> GaussianScene:
    g = torch.Generator().manual_seed(0)
    n = 200
    scene = GaussianScene(GaussianConfig(sh_degree=3), num=n)
    with torch.no_grad():
        scene.means.copy_(torch.rand(n, 3, generator=g) * 2 - 1 + torch.tensor([0, 0, 4.0]))
        scene.log_scales.copy_(torch.log(torch.rand(n, 3, generator=g) * 0.2 + 0.02))
        scene.quats.copy_(torch.randn(n, 4, generator=g))
        scene.opacity_logits.fill_(1.0)
        scene.sh0.copy_(torch.randn(n, 1, 3, generator=g))
        scene.shN.copy_(torch.randn(n, 15, 3, generator=g) * 0.3)
    return scene


def test_y_up_equals_rotated_scene():
    scene = _scene()
    eye = torch.tensor([[0.5, -0.3, 0.0]])
    c2w = look_at(eye, torch.tensor([[0.0, 0.0, 4.0]])).float()
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
    a = scene.render(cameras_from_fov(c2w, 32, 32, 60.0)).rgb
    b = to_y_up(scene).render(cameras_from_fov(flip @ c2w, 32, 32, 60.0)).rgb
    # same picture up to float rounding (1e-3 of the [0,1] range); a wrong SH/quaternion turn differs by ~0.1
    assert (a - b).abs().max() < 1e-3
    assert a.abs().max() > 0.05   # something was actually rendered


def test_cli_refuses_unknown_format_and_missing_run(tmp_path):
    cmd = [sys.executable, "-m", "scenedreamer.cli", "export", str(tmp_path / "nope"), "--format", "splat-ply",
           "--out", str(tmp_path / "o.ply")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2 and "no such run folder" in r.stderr
    r = subprocess.run(cmd[:5] + ["--format", "obj", "--out", str(tmp_path / "o.ply")], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown" in r.stderr
    assert not (tmp_path / "o.ply").exists()
