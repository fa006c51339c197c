"""`scenedreamer view`'s server: only the run's files and the viewer's assets; bad ports exit 2."""

import http.client
import json
import os
import socket

import numpy as np
import pytest

from .conftest import cli, free_port

pytestmark = pytest.mark.slow


def get(port: int, raw_path: str) -> tuple[int, bytes]:
    # http.client sends the path as given: no client-side normalisation of '..' or '%2e'
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request("GET", raw_path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_serves_page_assets_and_run_files(viewer, tiny_run):
    _, port, _ = viewer
    status, body = get(port, "/")
    assert status == 200 and b'type="importmap"' in body
    for asset in ("/static/vendor/three@0.187.0/three.module.js", "/static/vendor/spark@2.2.0/spark.module.min.js",
                  "/static/vendor/three@0.187.0/LICENSE", "/static/vendor/spark@2.2.0/LICENSE"):
        assert get(port, asset)[0] == 200, asset
    status, body = get(port, "/run/scene.ply")
    assert status == 200 and body == (tiny_run / "scene.ply").read_bytes()
    status, body = get(port, "/api/scene.json")
    manifest = json.loads(body)
    # the prompt comes back as the exact user text (the page shows it with textContent)
    assert manifest["prompt"] == "a forest lake <b>&amp;</b>"
    assert len(manifest["trajectory"]) == 2
    # trajectory.json's first camera is the identity in OpenCV axes (OpenGL diag(1,-1,-1) in the file)
    assert manifest["trajectory"][0]["c2w"][1][1] == pytest.approx(1.0)


def test_paths_out_of_the_run_are_404(tiny_run, tmp_path):
    import shutil

    from .conftest import start_view, stop_view

    run = tmp_path / "run"                      # a copy: the shared tiny run is never changed
    shutil.copytree(tiny_run, run)
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the run")
    os.symlink(secret, run / "escape.txt")
    os.symlink(run / "config.json", run / "inside_link.json")
    _, port, proc = start_view(run)
    try:
        assert get(port, "/run/inside_link.json")[0] == 200  # a symlink that stays inside is fine
        for path in ["/../../etc/passwd", "/run/../../etc/passwd", "/run/%2e%2e/%2e%2e/etc/passwd",
                     "/run/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/static/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
                     "/run//etc/passwd", "/run/%2Fetc%2Fpasswd", "/etc/passwd", f"/run/{secret}",
                     "/run/escape.txt", "/run/", "/run/images", "/run/a%00b", "/run/..%5c..%5cetc"]:
            status, body = get(port, path)
            assert status == 404, (path, status)
            assert b"root:" not in body and b"outside the run" not in body
    finally:
        stop_view(proc)


def test_foreign_host_header_is_refused(viewer):
    # a DNS-rebinding page reaches 127.0.0.1 under its own name: refuse it
    _, port, _ = viewer
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("GET", "/run/scene.ply", headers={"Host": "evil.example:80"})
    assert conn.getresponse().status == 403
    conn.close()


def test_port_in_use_is_one_line_exit_2(tiny_run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = cli("view", str(tiny_run), "--no-browser", "--port", str(port), timeout=600)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "already in use" in lines[0] and str(port) in lines[0]


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_port_out_of_range_exit_2(tiny_run, port):
    r = cli("view", str(tiny_run), "--no-browser", "--port", port, timeout=600)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "out of range" in r.stderr


@pytest.mark.parametrize("case, message", [("empty", "not a run folder"),
                                           ("foreign config", "not a run folder"),
                                           ("run without scene.ply", "lacks scene.ply")])
def test_a_folder_that_is_not_a_finished_run_with_scene_ply_exit_2(tiny_run, tmp_path, case, message):
    import shutil

    folder = tmp_path / "folder"
    if case == "run without scene.ply":
        shutil.copytree(tiny_run, folder)
        (folder / "scene.ply").unlink()
    else:
        folder.mkdir()
    if case == "foreign config":
        (folder / "config.json").write_text("{}")
        (folder / "scene.ply").write_text("someone else's")
    r = cli("view", str(folder), "--no-browser", "--port", str(free_port()), timeout=600)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr


def _standard_library_class_state() -> dict:
    """Every plain class attribute of the standard-library server classes, and mimetypes' tables."""
    import http.server
    import mimetypes
    import socketserver

    state = {}
    for module in (http.server, socketserver):
        for name, cls in vars(module).items():
            if isinstance(cls, type):
                state[f"{module.__name__}.{name}"] = {k: repr(v) for k, v in vars(cls).items()
                                                      if not k.startswith("__")}
    state["mimetypes"] = repr(getattr(mimetypes, "types_map", None))
    return state


def test_files_are_streamed_in_chunks_and_no_standard_library_class_is_changed(tiny_run, monkeypatch):
    """In process: scene.ply arrives whole, read CHUNK_BYTES at a time (never whole into memory)."""
    import threading

    from scenedreamer.viewer import server as srv

    before = _standard_library_class_state()
    reads = []
    real_open = open

    class Spy:
        def __init__(self, fh):
            self.fh = fh

        def read(self, n=-1):
            reads.append(n)
            return self.fh.read(n)

        def __getattr__(self, name):
            return getattr(self.fh, name)

    monkeypatch.setattr(srv, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(srv, "open", lambda *a, **k: Spy(real_open(*a, **k)), raising=False)
    server = srv.make_server(tiny_run, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        status, body = get(server.server_address[1], "/run/scene.ply")
    finally:
        server.shutdown()
        server.server_close()
    data = (tiny_run / "scene.ply").read_bytes()
    assert status == 200 and body == data
    assert len(data) > 3 * 4096                                     # so chunking is exercised ...
    assert reads and all(0 < n <= 4096 for n in reads) and len(reads) >= len(data) // 4096   # ... and used
    assert _standard_library_class_state() == before
    assert server.daemon_threads and isinstance(server, srv.ViewerServer)


def test_a_run_of_the_previous_release_is_served(tmp_path):
    """tests/fixtures/old_run_v1 (written before the run-folder contract) is still a run to view."""
    import shutil
    from pathlib import Path

    from scenedreamer.viewer import server as srv

    old = tmp_path / "old"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "old_run_v1", old)
    server = srv.make_server(old, port=0)
    try:
        manifest = srv.build_scene_manifest(srv.check_run_folder(old))
    finally:
        server.server_close()
    assert manifest["ply_bytes"] == (old / "scene.ply").stat().st_size
    assert len(manifest["trajectory"]) == 2 and manifest["prompt"] == "an old forest"


def test_scene_extent_is_the_robust_size_of_the_splats(tmp_path):
    """The fly speed's scale: the 5-95 percentile box of the centres; stragglers do not count."""
    from plyfile import PlyData, PlyElement

    from scenedreamer.viewer.server import scene_extent

    rng = np.random.default_rng(0)
    n = 10_000
    v = np.zeros(n, dtype=[(k, "f4") for k in ("x", "y", "z", "opacity")])
    v["x"], v["y"], v["z"] = rng.uniform(0, 10, n), rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    v["x"][:50] = 1e6                                     # 0.5 % far away: above the 95th percentile
    ply = tmp_path / "s.ply"
    PlyData([PlyElement.describe(v, "vertex")]).write(str(ply))
    xyz = np.stack([v["x"], v["y"], v["z"]], -1).astype(np.float64)
    want = np.linalg.norm(np.percentile(xyz, 95, axis=0) - np.percentile(xyz, 5, axis=0))
    assert scene_extent(ply) == pytest.approx(want, rel=1e-9)
    assert 8 < scene_extent(ply) < 10                     # ~ 0.9 * 10 along x, the outliers left out
    (tmp_path / "bad.ply").write_bytes(b"not a ply")
    assert scene_extent(tmp_path / "bad.ply") is None


def test_scene_reach_keeps_the_farthest_splats(tmp_path):
    """The page's far plane: the sampled centres' largest distance from their mean, far splats
    (a long walk's sky shell) included, unlike the extent."""
    from plyfile import PlyData, PlyElement

    from scenedreamer.viewer.server import scene_reach

    n = 1000
    v = np.zeros(n, dtype=[(k, "f4") for k in ("x", "y", "z")])
    v["x"] = np.linspace(-1, 1, n)
    v["z"][:10] = 5000.0                                  # 1 % of the splats: a far shell
    ply = tmp_path / "s.ply"
    PlyData([PlyElement.describe(v, "vertex")]).write(str(ply))
    xyz = np.stack([v["x"], v["y"], v["z"]], -1).astype(np.float64)
    assert scene_reach(ply) == pytest.approx(np.linalg.norm(xyz - xyz.mean(0), axis=-1).max(), rel=1e-9)
    assert scene_reach(ply) > 4900
    (tmp_path / "bad.ply").write_bytes(b"not a ply")
    assert scene_reach(tmp_path / "bad.ply") is None


def test_collider_is_served_with_its_spawn_and_bad_ones_are_one_line(tiny_run, tmp_path):
    from scenedreamer.export.glb import write_glb
    from scenedreamer.viewer.server import make_server

    glb = tmp_path / "c.glb"
    tri = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32)
    write_glb(glb, [("c", tri, np.array([[0, 1, 2]]), np.full((3, 3), 0.5, dtype=np.float32))])
    (tmp_path / "c.spawn.json").write_text(json.dumps({"position": [1, 2, 3], "up": "+y", "metric_scale": 0.5}))
    server = make_server(tiny_run, port=0, collider=glb)
    import threading

    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        port = server.server_address[1]
        status, body = get(port, "/collider.glb")
        assert status == 200 and body == glb.read_bytes()
        manifest = json.loads(get(port, "/api/scene.json")[1])
        assert manifest["collider_url"] == "/collider.glb"
        assert manifest["spawn"] == {"position": [1.0, 2.0, 3.0], "metric_scale": 0.5}
        assert manifest["scene_extent"] > 0
        assert manifest["num_splats"] > 0
    finally:
        server.shutdown()
        server.server_close()
    # without --collider nothing is served there
    plain = make_server(tiny_run, port=0)
    t = threading.Thread(target=plain.serve_forever, daemon=True)
    t.start()
    try:
        assert get(plain.server_address[1], "/collider.glb")[0] == 404
    finally:
        plain.shutdown()
        plain.server_close()

    not_glb = tmp_path / "x.glb"
    not_glb.write_text("hello")
    bad_spawn_dir = tmp_path / "b"
    bad_spawn_dir.mkdir()
    bad_glb = bad_spawn_dir / "m.glb"
    bad_glb.write_bytes(glb.read_bytes())
    (bad_spawn_dir / "spawn.json").write_text(json.dumps({"metric_scale": -1}))
    for collider, message in ((tmp_path / "missing.glb", "no such file"), (not_glb, "not a binary glTF 2"),
                              (bad_glb, "metric_scale: must be a positive number")):
        r = cli("view", str(tiny_run), "--no-browser", "--port", "0", "--collider", str(collider), timeout=600)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_read_spawn_checks_each_key_and_names_it(tmp_path):
    from scenedreamer.errors import UserInputError
    from scenedreamer.viewer.server import read_spawn

    f = tmp_path / "s.spawn.json"
    f.write_text(json.dumps({"up": [0, 1, 0], "units_per_metre": None, "eye_height": 2.5, "position": None,
                             "forward": [0, 0, -1]}))
    assert read_spawn(f) == {"eye_height": 2.5}          # nulls are absent keys; unknown keys ignored
    for data, key in (({"up": [0, 0, 1]}, "up:"), ({"up": "z"}, "up:"), ({"units_per_metre": 0}, "units_per_metre:"),
                      ({"eye_height": -1}, "eye_height:"), ({"position": [1, 2]}, "position:")):
        f.write_text(json.dumps(data))
        with pytest.raises(UserInputError, match=key):
            read_spawn(f)


def test_the_manifest_turns_level_of_detail_on_for_large_worlds(tiny_run, monkeypatch):
    """The manifest turns Spark's level of detail on from LOD_AUTO_SPLATS splats (the page's
    default when its URL names no ?lod): at the run's own count it is on, one splat more it is off."""
    import scenedreamer.viewer.server as srv

    count = srv.ply_vertex_count(tiny_run / "scene.ply")
    assert count and count > 0
    assert srv.build_scene_manifest(tiny_run)["lod_default"] is (count >= srv.LOD_AUTO_SPLATS)
    monkeypatch.setattr(srv, "LOD_AUTO_SPLATS", count)
    assert srv.build_scene_manifest(tiny_run)["lod_default"] is True
    monkeypatch.setattr(srv, "LOD_AUTO_SPLATS", count + 1)
    assert srv.build_scene_manifest(tiny_run)["lod_default"] is False


def test_the_manifest_reads_the_centres_once_for_both_sizes(tiny_run, monkeypatch):
    """scene_extent (fly speed) and scene_reach (far plane) come from one strided read of
    scene.ply's centres, and equal what each function reads on its own."""
    import scenedreamer.viewer.server as srv

    reads = []
    real = srv._sampled_centres
    monkeypatch.setattr(srv, "_sampled_centres", lambda ply: reads.append(ply) or real(ply))
    manifest = srv.build_scene_manifest(tiny_run)
    assert len(reads) == 1
    monkeypatch.setattr(srv, "_sampled_centres", real)
    assert manifest["scene_extent"] == srv.scene_extent(tiny_run / "scene.ply") > 0
    assert manifest["scene_reach"] == srv.scene_reach(tiny_run / "scene.ply") > 0
