"""`generate --image PATH [--image-depth PATH]`: the user's photo is the first view (issue 12 item 4).

Offline with a depth map (classical inpainting and depth completion for later views), with tiny
random networks (the first-view depth network estimates the photo's depth), and the refusals.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from scenedreamer.cli import main
from tiny_models import tiny_run_args


def _photo(folder, h=60, w=80):
    """A smooth picture and a depth map (metres) of its own size; paths (photo, depth)."""
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx / w, yy / h, 0.5 + 0.4 * np.sin(xx / 5.0)], -1)
    Image.fromarray((rgb * 255).astype(np.uint8)).save(folder / "photo.png")
    np.save(folder / "depth.npy", (2.0 + 3.0 * yy / h).astype(np.float32))
    return folder / "photo.png", folder / "depth.npy"


def _first_view(run):
    from scenedreamer.support.database import SupportDatabase

    with SupportDatabase.open(run / "support", create=False) as db:
        return db.get(db.ids()[0])


def test_offline_photo_start_keeps_the_photo_and_its_depth(tmp_path):
    from scenedreamer.priors.photo import load_depth_map, load_photo

    photo, depth = _photo(tmp_path)
    run = tmp_path / "run"
    code = main(["generate", "a room", "--image", str(photo), "--image-depth", str(depth), "--out", str(run),
                 *tiny_run_args("48x32", 3)])
    assert code == 0
    fitted = load_photo(photo, 48, 32)
    view = _first_view(run)
    # the support database stores uint8 colours: the photo comes back to within one level
    assert torch.allclose(view.rgb.cpu(), fitted.rgb, atol=0.5 / 255 + 1e-6)
    assert torch.allclose(view.depth.cpu(), load_depth_map(depth, fitted.plan), rtol=1e-3)
    saved = json.loads((run / "config.json").read_text())
    assert saved["first_view"]["image"] == str(photo) and saved["first_view"]["depth"] == str(depth)
    # later views are filled by network-free methods that work on any picture, not by the oracle
    assert saved["priors"]["inpainter"] == "classical" and saved["priors"]["depth"] == "classical"
    used = json.loads((run / "events.jsonl").read_text().splitlines()[0])["message"]
    assert "your photo photo.png" in used and "cut top and bottom" in used


def test_offline_photo_without_depth_names_the_preset_to_use(tmp_path, capsys):
    photo, _ = _photo(tmp_path)
    run = tmp_path / "run"
    assert main(["generate", "a room", "--image", str(photo), "--out", str(run), *tiny_run_args()]) == 2
    err = capsys.readouterr().err.strip()
    assert "--image-depth" in err and "--preset sd15" in err and len(err.splitlines()) == 1
    assert not run.exists()


def test_depth_without_photo_and_bad_photo_are_refused_before_anything_exists(tmp_path, capsys):
    _, depth = _photo(tmp_path)
    run = tmp_path / "run"
    assert main(["generate", "a room", "--image-depth", str(depth), "--out", str(run), *tiny_run_args()]) == 2
    assert "needs --image" in capsys.readouterr().err
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    assert main(["generate", "a room", "--image", str(tmp_path / "broken.jpg"), "--image-depth", str(depth),
                 "--out", str(run), *tiny_run_args()]) == 2
    err = capsys.readouterr().err.strip()
    assert "broken.jpg: cannot read the image" in err and len(err.splitlines()) == 1
    assert not run.exists()


def test_resume_refuses_a_changed_photo_or_trajectory_file(tmp_path, capsys):
    from scenedreamer.geometry.trajectory import make_trajectory
    from scenedreamer.geometry.trajectory_io import write_transforms_json

    photo, depth = _photo(tmp_path)
    traj = tmp_path / "path.json"
    write_transforms_json(traj, make_trajectory("lookaround", 3, 48, 32, 60.0))
    run = tmp_path / "run"
    args = ["generate", "a room", "--image", str(photo), "--image-depth", str(depth), "--out", str(run),
            "--trajectory", str(traj), *tiny_run_args("48x32", 3)]
    assert main(args) == 0
    capsys.readouterr()
    original = photo.read_bytes()
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(photo)
    assert main([*args, "--resume"]) == 2
    assert f"{photo}: the photo changed since the run started" in capsys.readouterr().err
    photo.write_bytes(original)
    traj.write_text(traj.read_text() + "\n")                  # same cameras, other bytes
    assert main([*args, "--resume"]) == 2
    assert f"{traj}: the trajectory file changed" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_depth_folder(tmp_path_factory):
    from tiny_models import tiny_depth_model

    root = tmp_path_factory.mktemp("photo-models")
    tiny_depth_model("zoedepth", root / "zoe")
    return root / "zoe"


def test_photo_start_with_a_depth_network(tiny_depth_folder, tmp_path):
    """A real (tiny, random) depth network estimates the photo's depth; the photo is still view 0.
    The inpainter stays classical so the test needs no diffusion model: the first-view path is
    the same whichever inpainter runs later."""
    photo, _ = _photo(tmp_path)
    run = tmp_path / "run"
    code = main(["generate", "a room", "--image", str(photo), "--out", str(run), *tiny_run_args("48x32", 3),
                 "--set", f"priors.depth=\"{tiny_depth_folder}\"", "--set", "priors.inpainter=classical"])
    assert code == 0
    from scenedreamer.priors.photo import load_photo

    view = _first_view(run)
    assert torch.allclose(view.rgb.cpu(), load_photo(photo, 48, 32).rgb, atol=0.5 / 255 + 1e-6)
    assert bool((view.depth > 0).all())
    assert "zoe" in json.loads((run / "events.jsonl").read_text().splitlines()[0])["message"]


def test_classical_depth_completion_keeps_known_depth_and_cannot_start_a_scene():
    """The network-free depth role: known pixels exact, holes = complete_depth; no known pixel
    (a first view) is refused rather than guessed."""
    from scenedreamer.errors import UserInputError
    from scenedreamer.geometry.cameras import cameras_from_fov
    from scenedreamer.geometry.depth_align import AlignConfig, SeamConfig
    from scenedreamer.pipeline.local_frame import metric_depth_for_new_view
    from scenedreamer.priors.classical import ClassicalDepthCompleter, complete_depth

    camera = cameras_from_fov(torch.eye(4)[None], 16, 12, 60.0)
    known = torch.ones(12, 16, dtype=torch.bool)
    known[4:8, 5:11] = False
    depth = torch.linspace(2.0, 4.0, 16).expand(12, 16).clone()
    completer = ClassicalDepthCompleter()
    image = torch.rand(12, 16, 3)
    got = metric_depth_for_new_view(image, camera, depth, known, completer, AlignConfig(), SeamConfig(), 4.0)
    assert torch.equal(got[known], depth[known])
    assert torch.equal(got, complete_depth(depth, known, completer.config))
    with pytest.raises(UserInputError, match="no known depth"):
        metric_depth_for_new_view(image, camera, depth, torch.zeros_like(known), completer,
                                  AlignConfig(), SeamConfig(), 4.0)


def test_dry_run_states_the_photo_fit_and_counts_no_text_to_image_model(tmp_path, capsys):
    from scenedreamer.pipeline.config import preset_config, with_first_view_image
    from scenedreamer.pipeline.plan import loaded_networks

    photo, depth = _photo(tmp_path)
    assert main(["generate", "a room", "--image", str(photo), "--image-depth", str(depth), "--resolution", "48x32",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"your photo {photo} (80x60 scaled x0.6 to 48x36, 2 px cut top and bottom)" in out
    assert f"your depth map {depth}" in out and "completion of the view's known depth" in out
    # a photo start with a depth map loads neither the text-to-image model nor a first-view depth network
    config = with_first_view_image(preset_config("sd15"), str(photo), str(depth))
    assert loaded_networks(config) == ["sd15-inpaint", "zoedepth", "sd15"]
    assert "sd15" in loaded_networks(preset_config("sd15"))


def test_resume_of_a_run_with_the_older_marker_still_checks_its_trajectory_file(tmp_path, capsys):
    """Runs written before input_sha256 pinned only the trajectory file (trajectory_sha256)."""
    from scenedreamer.geometry.trajectory import make_trajectory
    from scenedreamer.geometry.trajectory_io import write_transforms_json
    from scenedreamer.pipeline.run_folder import file_sha256

    traj = tmp_path / "path.json"
    write_transforms_json(traj, make_trajectory("lookaround", 3, 48, 32, 60.0))
    run = tmp_path / "run"
    args = ["generate", "a room", "--out", str(run), "--trajectory", str(traj), *tiny_run_args("48x32", 3)]
    assert main(args) == 0
    marker = run / ".scenedreamer-run.json"
    old = {k: v for k, v in json.loads(marker.read_text()).items() if k != "input_sha256"}
    marker.write_text(json.dumps({**old, "trajectory_file": str(traj), "trajectory_sha256": file_sha256(traj)}))
    capsys.readouterr()
    traj.write_text(traj.read_text() + "\n")
    assert main([*args, "--resume"]) == 2
    assert f"{traj}: the trajectory file changed" in capsys.readouterr().err
