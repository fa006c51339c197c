"""nerfstudio 1.1.5's OWN NerfstudioDataParser (in its own venv, `make nerfstudio-venv`) reads our
nerfstudio export of a tiny lookaround run and a tiny orbit run: cameras, scale, depth files and
the ply_file_path points, as splatfacto would load them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from scenedreamer.cli import main
from tiny_models import tiny_run_args

REPO = Path(__file__).resolve().parents[2]
NS_PYTHON = REPO / ".cache" / "nerfstudio-venv" / "bin" / "python"
PROBE = Path(__file__).with_name("nerfstudio_probe.py")
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])

if not NS_PYTHON.exists():
    if os.environ.get("CI"):             # `make test` builds it: in CI its absence is a failure
        raise RuntimeError(f"{NS_PYTHON} is missing: run `make nerfstudio-venv`")
    pytest.skip("needs nerfstudio's venv: run `make nerfstudio-venv` (make test does)", allow_module_level=True)


def _probes(dataset: Path, *flag_sets: list[str]) -> list[dict]:
    """One parse of ``dataset`` per flag set, all in one nerfstudio process (its import is most
    of a probe's time), in order."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"
    args = [arg for i, flags in enumerate(flag_sets) for arg in (["--then"] if i else []) + list(flags)]
    r = subprocess.run([str(NS_PYTHON), str(PROBE), str(dataset), *args], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    results = [json.loads(line[len("PROBE "):]) for line in r.stdout.splitlines() if line.startswith("PROBE ")]
    assert len(results) == len(flag_sets), r.stdout[-3000:]
    return results


def _probe(dataset: Path, *flags: str) -> dict:
    return _probes(dataset, list(flags))[0]


@pytest.fixture(scope="module", params=["lookaround", "orbit"])
def run(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param) / "run"
    args = [*tiny_run_args("48x32", 3), "--set", "export.nerfstudio=true", "--trajectory", request.param]
    assert main(["generate", "a forest lake", "--out", str(root), *args]) == 0
    return request.param, root


def _check_cameras_depth_points(root: Path, got: dict) -> None:
    transforms = json.loads((root / "transforms.json").read_text())
    frames = sorted(transforms["frames"], key=lambda f: f["file_path"])
    assert got["images"] == [Path(f["file_path"]).name for f in frames]
    assert got["depth_files"] == [Path(f["depth_file_path"]).name for f in frames]
    # nerfstudio's cameras = its orient/centre transform of our c2w, translations times its scale
    T = np.array(got["transform"])
    for f, c2w in zip(frames, got["c2w"]):
        want = T @ np.array(f["transform_matrix"])
        want[:, 3] *= got["scale"]
        np.testing.assert_allclose(np.array(c2w), want, atol=1e-4)     # float32 parser maths
    for key, ours in {"fx": "fl_x", "fy": "fl_y", "cx": "cx", "cy": "cy", "w": "w", "h": "h"}.items():
        np.testing.assert_allclose(got[key], [f.get(ours, transforms.get(ours)) for f in frames], rtol=1e-6)

    # the depth nerfstudio reads (its default depth_unit_scale_factor) is our depth, every known pixel
    from scenedreamer.support.database import SupportDatabase
    with SupportDatabase.open(root / "support", create=False) as db:
        view0 = db.get(db.ids()[0])
    depth = view0.depth.double().numpy()
    known = view0.valid.numpy() & (depth > 0)
    assert (depth[known] > 65.535).any()          # what the 16-bit millimetre PNG lost
    np.testing.assert_allclose(np.array(got["depth0"]), np.where(known, depth, 0.0), rtol=1e-6)

    # ply_file_path points, in nerfstudio's frame, lie on camera 0's depth: view 0's own points at least
    points = np.array(got["points"])
    c2w = np.array(got["c2w"][0])
    cam = (points - c2w[:, 3]) @ c2w[:, :3]                  # OpenGL camera axes: looks down -z
    z = -cam[:, 2]
    front = z > 0
    u = got["fx"][0] * cam[front, 0] / z[front] + got["cx"][0]
    v = -got["fy"][0] * cam[front, 1] / z[front] + got["cy"][0]
    col, row = np.floor(u).astype(int), np.floor(v).astype(int)
    inside = (col >= 0) & (col < view0.width) & (row >= 0) & (row < view0.height)
    stored = np.array(got["depth0"])[row[inside], col[inside]] * got["scale"]
    # 1e-4 relative: float32 round trips through PLY and the parser's transform
    matched = int((np.abs(z[front][inside] - stored) <= 1e-4 * stored).sum())
    assert matched >= 0.9 * known.sum() and len(got["points_rgb"]) == len(points)


@pytest.mark.slow      # two tiny runs + two nerfstudio imports (open3d): ~30 s each on 2 busy cores
def test_nerfstudio_parser_reads_the_export(run):
    preset, root = run
    transforms = json.loads((root / "transforms.json").read_text())
    assert transforms["ply_file_path"] == "points3D.ply"
    if preset == "lookaround":
        # every camera at one centre: nerfstudio's default auto-scale divides by zero (why we warn),
        # and the option our warning names makes the same parser work
        default, got = _probes(root, [], ["--no-auto-scale"])
        assert default == {"error": "ZeroDivisionError"}
        assert transforms["scenedreamer"]["ns_train"].endswith("--auto-scale-poses False")
        assert got["scale"] == 1.0
    else:
        assert "scenedreamer" not in transforms
        got = _probe(root)                          # nerfstudio's defaults, as `ns-train splatfacto --data RUN`
        assert 0 < got["scale"] < float("inf")
    _check_cameras_depth_points(root, got)
