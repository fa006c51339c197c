"""usd: a ParticleField3DGaussianSplat read back by OpenUSD itself (usd-core), the CLI on a tiny
run for the three splat formats, and `--format usd` without the optional extra."""

import sys

import numpy as np
import pytest
import torch

from scenedreamer.cli import main
from scenedreamer.export.usd_splat import read_usd_splat, write_usd_splat
from splat_scenes import random_scene, rotation_angle
from shared_runs import shared_run_copy
from tiny_models import tiny_run_args

pxr = pytest.importorskip("pxr", reason="usd-core is in the test extra (pip install -e '.[test]')")


def test_openusd_reads_the_schema_and_its_conventions(tmp_path):
    from pxr import Usd, UsdGeom, UsdVol

    scene = random_scene(n=80, degree=2)
    write_usd_splat(tmp_path / "s.usd", scene)
    stage = Usd.Stage.Open(str(tmp_path / "s.usd"))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y
    prim = stage.GetDefaultPrim()
    assert prim.GetTypeName() == "ParticleField3DGaussianSplat"
    splats = UsdVol.ParticleField3DGaussianSplat(prim)
    pos = np.array(splats.GetPositionsAttr().Get())
    assert np.allclose(pos, scene.means.detach().numpy() * [1, -1, -1], atol=1e-6)     # +y up
    assert np.allclose(np.array(splats.GetScalesAttr().Get()), np.exp(scene.log_scales.detach().numpy()), rtol=1e-5)
    assert np.allclose(np.array(splats.GetOpacitiesAttr().Get()),
                       torch.sigmoid(scene.opacity_logits).detach().numpy(), atol=1e-6)
    assert splats.GetRadianceSphericalHarmonicsDegreeAttr().Get() == 2
    assert len(splats.GetRadianceSphericalHarmonicsCoefficientsAttr().Get()) == 80 * 9
    assert len(splats.GetOrientationsAttr().Get()) == 80
    # the extent USD computes for the prim matches the points (schema-aware bound computation)
    box = UsdGeom.Imageable(prim).ComputeLocalBound(Usd.TimeCode.Default(), UsdGeom.Tokens.default_).GetRange()
    assert np.allclose(np.array(box.GetMin()), pos.min(0), atol=1e-5)


def test_round_trip(tmp_path):
    scene = random_scene(degree=3)
    write_usd_splat(tmp_path / "s.usd", scene)
    back = read_usd_splat(tmp_path / "s.usd")
    assert (back.means - scene.means).abs().max() <= 1e-6 * float(scene.scene_extent)
    assert (back.log_scales - scene.log_scales).abs().max() < 1e-5
    assert rotation_angle(back.quats, scene.quats).max() < 3e-3   # float32 acos near 1: ~1e-3 rad
    assert (back.sh0 - scene.sh0).abs().max() < 1e-6 and (back.shN - scene.shN).abs().max() < 1e-6


@pytest.fixture(scope="module")
def run(tmp_path_factory, worker_id):
    # built once per session, shared with the other modules that ask for the same tiny run
    return shared_run_copy(tmp_path_factory, worker_id, "a forest lake", tiny_run_args("48x32", 3),
                           tmp_path_factory.mktemp("splats") / "run")


def test_cli_writes_the_three_splat_formats_of_a_run(run, tmp_path, capsys):
    from scenedreamer.export.gltf_splat import read_gltf_splat
    from scenedreamer.export.ply import read_gaussians_ply
    from scenedreamer.export.spz import read_spz

    ply = read_gaussians_ply(run / "scene.ply")
    extent = float(ply.scene_extent)
    for fmt, name, reader in [("spz", "s.spz", read_spz), ("gltf-splat", "s.glb", read_gltf_splat),
                              ("usd", "s.usd", read_usd_splat)]:
        assert main(["export", str(run), "--format", fmt, "--out", str(tmp_path / name), "--quiet"]) == 0
        assert "+y up" in capsys.readouterr().out
        back = reader(tmp_path / name)
        assert back.num_gaussians == ply.num_gaussians
        assert (back.means - ply.means).abs().max() <= 1e-4 * extent, fmt      # issue 22's round trip
    # an earlier output is kept unless --force
    before = (tmp_path / "s.spz").read_bytes()
    assert main(["export", str(run), "--format", "spz", "--out", str(tmp_path / "s.spz")]) == 2
    assert "use --force" in capsys.readouterr().err and (tmp_path / "s.spz").read_bytes() == before


def test_usd_without_the_extra_says_how_to_install_and_writes_nothing(run, tmp_path, capsys, monkeypatch):
    for name in [m for m in sys.modules if m == "pxr" or m.startswith("pxr.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pxr", None)          # `import pxr` now raises ImportError
    assert main(["export", str(run), "--format", "usd", "--out", str(tmp_path / "s.usd")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'scenedreamer[usd]'" in err
    assert list(tmp_path.iterdir()) == []
