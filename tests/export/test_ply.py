"""Standard 3DGS PLY export: exact round trip, the property names plyfile reads, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plyfile import PlyData

from scenedreamer.errors import UserInputError
from scenedreamer.export.ply import gaussian_ply_property_names, read_gaussians_ply, write_gaussians_ply
from scenedreamer.representation.gaussians import PARAM_NAMES, GaussianConfig, GaussianScene


def random_scene(n: int, sh_degree: int, feature_dim: int, seed: int = 0) -> GaussianScene:
    g = torch.Generator().manual_seed(seed)
    scene = GaussianScene(GaussianConfig(sh_degree=sh_degree, feature_dim=feature_dim), num=n)
    with torch.no_grad():
        for name in PARAM_NAMES:
            p = getattr(scene, name)
            p.copy_(torch.randn(p.shape, generator=g))
    return scene


@pytest.mark.parametrize("sh_degree,feature_dim", [(0, 0), (1, 3), (3, 0)])
def test_round_trip_is_exact(tmp_path, sh_degree, feature_dim):
    scene = random_scene(37, sh_degree, feature_dim)
    path = tmp_path / "scene.ply"
    write_gaussians_ply(path, scene)
    back = read_gaussians_ply(path)
    assert back.config.sh_degree == sh_degree and back.feature_dim == feature_dim
    for name in PARAM_NAMES:
        assert torch.equal(getattr(back, name), getattr(scene, name)), name
    assert [p.name for p in tmp_path.iterdir()] == ["scene.ply"]          # no temp file left


def test_standard_layout_read_by_plyfile(tmp_path):
    scene = random_scene(5, 2, 4)
    path = tmp_path / "s.ply"
    write_gaussians_ply(path, scene)
    ply = PlyData.read(str(path))
    assert not ply.text and ply.byte_order == "<"
    vertex = ply["vertex"]
    names = [p.name for p in vertex.properties]
    expected = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
                + [f"f_rest_{i}" for i in range(24)] + ["opacity", "scale_0", "scale_1", "scale_2",
                                                         "rot_0", "rot_1", "rot_2", "rot_3"]
                + [f"feat_{i}" for i in range(4)])
    assert names == expected == gaussian_ply_property_names(2, 4)
    assert all(vertex.data.dtype[n] == np.dtype("<f4") for n in names)
    # values are the raw (pre-activation) parameters, f_rest channel-major as in 3DGS
    np.testing.assert_array_equal(vertex["opacity"], scene.opacity_logits.detach().numpy())
    np.testing.assert_array_equal(vertex["scale_1"], scene.log_scales[:, 1].detach().numpy())
    np.testing.assert_array_equal(vertex["rot_0"], scene.quats[:, 0].detach().numpy())
    np.testing.assert_array_equal(vertex["f_dc_2"], scene.sh0[:, 0, 2].detach().numpy())
    np.testing.assert_array_equal(vertex["f_rest_0"], scene.shN[:, 0, 0].detach().numpy())
    np.testing.assert_array_equal(vertex["f_rest_8"], scene.shN[:, 0, 1].detach().numpy())   # 8 red first
    write_gaussians_ply(path, scene, include_features=False)
    assert not any(p.name.startswith("feat_") for p in PlyData.read(str(path))["vertex"].properties)


def test_read_renders_like_the_original(tmp_path):
    scene = random_scene(20, 1, 0)
    with torch.no_grad():
        scene.means.copy_(scene.means * 0.3 + torch.tensor([0.0, 0.0, 3.0]))
        scene.log_scales.copy_(torch.full_like(scene.log_scales, -2.5))
    path = tmp_path / "s.ply"
    write_gaussians_ply(path, scene)
    back = read_gaussians_ply(path)
    from scenedreamer.geometry.cameras import Cameras, intrinsics_from_fov
    cam = Cameras(intrinsics_from_fov(60.0, 24, 16), torch.eye(4), 24, 16)
    with torch.no_grad():
        torch.testing.assert_close(back.render(cam).rgb, scene.render(cam).rgb)


def test_bad_files_raise_user_input_errors(tmp_path):
    with pytest.raises(UserInputError, match="no such"):
        read_gaussians_ply(tmp_path / "missing.ply")
    junk = tmp_path / "junk.ply"
    junk.write_bytes(b"not a ply at all")
    with pytest.raises(UserInputError, match="not a readable PLY"):
        read_gaussians_ply(junk)
    from plyfile import PlyElement
    pts = np.zeros(3, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    PlyData([PlyElement.describe(pts, "vertex")]).write(str(tmp_path / "points.ply"))
    with pytest.raises(UserInputError, match="lacks Gaussian properties"):
        read_gaussians_ply(tmp_path / "points.ply")
