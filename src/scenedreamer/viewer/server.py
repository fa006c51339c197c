"""The local web viewer's HTTP server (Python stdlib only).

URL space (everything else is 404):

    /                      the viewer page (static/index.html)
    /static/<path>         the viewer's own assets (static/, including vendor/ three.js and Spark)
    /run/<path>            a file of the run folder (scene.ply, trajectory.json, config.json, ...)
    /api/scene.json        what the page needs, built here: the prompt, the trajectory and support
                           cameras (OpenCV c2w 4x4 and K in pixels, the run's world frame, which is
                           the PLY's y-down frame), the scene.ply URL, the scene's extent (fly
                           speed) and, with a collider, its URL and spawn.json
    /collider.glb          only with --collider FILE: that one file (walk mode's collision mesh,
                           glTF +y up); nothing else outside the run folder is ever served

Containment: a request path is percent-decoded once, split on '/', and refused if any segment
is '', '.', '..', holds a backslash or NUL, or if the joined path's realpath (symlinks resolved)
is not inside the served root's realpath. So `..`, `%2e%2e/`, absolute paths (`/run//etc/x`) and
symlinks pointing out of the run folder all get 404, and only regular files are served.

The server binds 127.0.0.1 by default; the CLI only binds another address when asked
explicitly (and warns). When bound to loopback, requests whose Host header is not a loopback
name are refused (403), which blocks DNS-rebinding pages from reading the run.
"""

from __future__ import annotations

import json
import mimetypes
import os
import urllib.parse
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..errors import UserInputError

STATIC_DIR = Path(__file__).resolve().parent / "static"
SCENE_PLY = "scene.ply"
COLLIDER_URL = "/collider.glb"
EXTENT_SAMPLE = 200_000
"""Splat centres sampled (evenly strided) for the scene's extent: enough for stable percentiles,
cheap for a 2M-splat scene (the PLY is memory-mapped, only these rows are read)."""
EXTENT_PERCENTILES = (5.0, 95.0)
"""The extent is the diagonal of the box between these per-axis percentiles of the splat centres:
far-away stragglers and the backdrop's few distant splats do not inflate it."""
MAX_SPAWN_BYTES = 64 * 1024
LOD_AUTO_SPLATS = 1_000_000
"""From this many splats the page opens scene.ply with Spark's level of detail unless the URL
says ``?lod=0``: in headless Chromium on a 2-core box 2 M splats reach their first frame in
56.5 s without it and 13.1 s with it; 500k took 8.5 s without it on an earlier, faster box
(BENCHMARKS.md, issues 9 and 23)."""
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
CHUNK_BYTES = 1 << 20
"""Files are sent in chunks of this size (memory per request stays bounded by it)."""

# module scripts must be served with a JavaScript MIME type or the browser refuses them;
# mimetypes' answers vary with the system's /etc/mime.types, so the ones the page needs are fixed
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".ply": "application/octet-stream",
    ".wasm": "application/wasm",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".mp4": "video/mp4",
    ".txt": "text/plain; charset=utf-8",
}


def check_run_folder(run_dir: str | os.PathLike) -> Path:
    """The run folder as an absolute real path; UserInputError (one line) if it is not a finished
    run holding scene.ply (the run-folder contract, pipeline/run_contract.py)."""
    from ..pipeline.run_contract import require_finished_run

    return Path(os.path.realpath(require_finished_run(run_dir, SCENE_PLY)))


def resolve_inside(root: Path, url_path: str) -> Path | None:
    """The regular file that ``url_path`` (the part after a route prefix, still percent-encoded)
    names inside ``root``, or None when it is malformed, escapes ``root`` (``..``, encoded ``..``,
    absolute paths, symlinks out) or is not a regular file. ``root`` must be a real path."""
    decoded = urllib.parse.unquote(url_path, errors="strict") if "%" in url_path else url_path
    if not decoded or "\x00" in decoded or "\\" in decoded:
        return None
    parts = decoded.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None  # '' catches absolute paths ('//etc') and doubled slashes
    candidate = os.path.realpath(os.path.join(root, *parts))
    root_s = str(root)
    if os.path.commonpath([root_s, candidate]) != root_s or candidate == root_s:
        return None
    if not os.path.isfile(candidate):
        return None
    return Path(candidate)


def _camera_list(path: Path) -> list[dict[str, Any]]:
    """Cameras of a nerfstudio transforms.json as plain lists: c2w (4x4, OpenCV axes), K (3x3,
    pixels), width, height. [] when the file is absent."""
    if not path.is_file():
        return []
    from ..geometry.trajectory_io import read_transforms_json

    traj = read_transforms_json(path)
    cams = traj.cameras
    return [{"c2w": cams.c2w[i].tolist(), "K": cams.K[i].tolist(),
             "width": int(cams.width), "height": int(cams.height)} for i in range(len(cams))]


def _sampled_centres(ply: Path):
    """(n, 3) float64 splat centres of ``ply`` (every len // EXTENT_SAMPLE-th row, finite ones
    only), or None when the file cannot be read as a PLY with x, y, z vertices."""
    import numpy as np
    from plyfile import PlyData

    try:
        vertex = PlyData.read(str(ply), mmap=True)["vertex"].data
        step = max(1, len(vertex) // EXTENT_SAMPLE)
        xyz = np.stack([np.asarray(vertex[k][::step], dtype=np.float64) for k in ("x", "y", "z")], -1)
    except Exception:  # plyfile raises several types for odd files; the sizes are only hints
        return None
    xyz = xyz[np.isfinite(xyz).all(-1)]
    return xyz if len(xyz) else None


def scene_extent(ply: Path) -> float | None:
    """Robust size of the splat cloud (scene units, the run's world): the diagonal of the box
    between the EXTENT_PERCENTILES of the centres. None when the file cannot be read as a PLY
    with x, y, z vertices (the page then sizes its fly speed from the cameras alone)."""
    return extent_of_centres(_sampled_centres(ply))


def scene_reach(ply: Path) -> float | None:
    """How far the splats reach (scene units): the largest distance of a sampled centre from
    the centres' mean. Stragglers count here: the page's far plane must keep the farthest
    splats, the sky shell included (4x the farthest content or the cameras' reach, and thousands
    of units out with distill.sky_parallax_pixels set: representation/distill.py shell_radius).
    None when the file cannot be read."""
    return reach_of_centres(_sampled_centres(ply))


def extent_of_centres(xyz) -> float | None:
    """``scene_extent`` of sampled centres (n, 3) (``_sampled_centres``; None -> None)."""
    import numpy as np

    if xyz is None:
        return None
    lo, hi = np.percentile(xyz, EXTENT_PERCENTILES, axis=0)
    return float(np.linalg.norm(hi - lo))


def reach_of_centres(xyz) -> float | None:
    """``scene_reach`` of sampled centres (n, 3) (``_sampled_centres``; None -> None)."""
    import numpy as np

    if xyz is None:
        return None
    return float(np.linalg.norm(xyz - xyz.mean(0), axis=-1).max())


def read_spawn(path: Path) -> dict[str, Any]:
    """spawn.json of a collider, as `export --format collider` writes it (export/collider.py
    spawn_record): {"position": [x, y, z] feet on the ground in the GLB's frame (+y up) or null,
    "up": [0, 1, 0] (or "y"), "units_per_metre": scene units per metre or null, "eye_height": the
    first camera's height above that ground in scene units or null}; every key optional.
    "metric_scale" / "scene_units_per_metre" are read as older names of units_per_metre.
    Returns {"position", "metric_scale", "eye_height"} for the keys present (the page's names).
    UserInputError (one line, naming the file and the key) when malformed."""
    import math

    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    try:
        if path.stat().st_size > MAX_SPAWN_BYTES:
            raise UserInputError(f"{path}: larger than {MAX_SPAWN_BYTES} bytes; not a spawn.json")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise UserInputError(f"{path}: unreadable ({err})") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: must be a JSON object")
    out: dict[str, Any] = {}
    pos = data.get("position")
    if pos is not None:
        if not (isinstance(pos, list) and len(pos) == 3 and all(number(v) for v in pos)):
            raise UserInputError(f"{path}: position: must be 3 finite numbers, got {pos!r}")
        out["position"] = [float(v) for v in pos]
    up = data.get("up", data.get("up_axis"))
    if up is not None:
        # the collider writes a vector; hand-written files may say "y" / "+y"
        is_y = (str(up).lstrip("+").lower() == "y" if isinstance(up, str) else
                isinstance(up, list) and len(up) == 3 and all(number(v) for v in up)
                and math.dist([float(v) for v in up], [0.0, 1.0, 0.0]) < 1e-6)
        if not is_y:
            raise UserInputError(f"{path}: up: the viewer needs a +y-up collider (glTF), got {up!r}")
    for key in ("units_per_metre", "metric_scale", "scene_units_per_metre"):
        scale = data.get(key)
        if scale is None:
            continue
        if not (number(scale) and scale > 0):
            raise UserInputError(f"{path}: {key}: must be a positive number (scene units per metre), "
                                 f"got {scale!r}")
        out["metric_scale"] = float(scale)
        break
    eye = data.get("eye_height")
    if eye is not None:
        if not (number(eye) and eye > 0):
            raise UserInputError(f"{path}: eye_height: must be a positive number (scene units), got {eye!r}")
        out["eye_height"] = float(eye)
    return out


def spawn_beside(collider: Path) -> Path | None:
    """The collider's spawn.json: FILE.spawn.json, else spawn.json in the same folder, else None."""
    for cand in (collider.with_suffix(".spawn.json"), collider.parent / "spawn.json"):
        if cand.is_file():
            return cand
    return None


def check_collider(path: str | os.PathLike) -> Path:
    """--collider FILE as a real path: a regular file that starts like a GLB (magic 'glTF',
    version 2). UserInputError naming the file otherwise."""
    p = Path(path)
    if not p.is_file():
        raise UserInputError(f"--collider {path}: no such file")
    try:
        with open(p, "rb") as f:
            head = f.read(12)
    except OSError as err:
        raise UserInputError(f"--collider {path}: unreadable ({err.strerror or err})") from None
    if len(head) < 12 or head[:4] != b"glTF" or int.from_bytes(head[4:8], "little") != 2:
        raise UserInputError(f"--collider {path}: not a binary glTF 2 file (.glb); export one with "
                             f"`scenedreamer export RUN --format glb` or `--format collider`")
    return Path(os.path.realpath(p))


def ply_vertex_count(ply: Path) -> int | None:
    """The vertex (splat) count of a PLY from its header alone, or None when unreadable."""
    from plyfile import PlyData

    try:
        return int(PlyData.read(str(ply), mmap=True)["vertex"].count)
    except Exception:  # plyfile raises several types for odd files; the count is only shown
        return None


def build_scene_manifest(run: Path, collider: Path | None = None) -> dict[str, Any]:
    """The page's scene description for run folder ``run`` (see the module docstring).

    The prompt is user text: it is passed as a JSON string and the page shows it with
    textContent only, never as HTML.
    """
    prompt = ""
    representation = ""
    config_path = run / "config.json"
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as err:
            raise UserInputError(f"{config_path}: unreadable ({err})") from None
        if isinstance(config, dict):
            prompt = str(config.get("prompt", ""))
            rep = config.get("representation")
            representation = str(rep.get("type", "")) if isinstance(rep, dict) else ""
    return {
        "prompt": prompt,
        "representation": representation,
        "ply_url": "/run/" + SCENE_PLY,
        "ply_bytes": (run / SCENE_PLY).stat().st_size,
        # world frame: the run's (OpenCV y-down, like scene.ply); the page flips it upright
        "trajectory": _camera_list(run / "trajectory.json"),
        "support": _camera_list(run / "transforms.json"),
        # one strided read of the centres serves both sizes
        "scene_extent": extent_of_centres(centres := _sampled_centres(run / SCENE_PLY)),
        "scene_reach": reach_of_centres(centres),
        "num_splats": (splats := ply_vertex_count(run / SCENE_PLY)),
        # the page's level of detail when its URL names none (LOD_AUTO_SPLATS)
        "lod_default": splats is not None and splats >= LOD_AUTO_SPLATS,
        # walk mode: the collider (glTF +y up, the page's own upright frame) and its spawn.json
        "collider_url": COLLIDER_URL if collider is not None else None,
        "spawn": (read_spawn(sp) if collider is not None and (sp := spawn_beside(collider)) else None),
    }


class ViewerHandler(BaseHTTPRequestHandler):
    """Serves the viewer page, its assets, the run's files and the scene manifest (GET/HEAD)."""

    server_version = "scenedreamer-view"
    protocol_version = "HTTP/1.1"

    def __init__(self, *args, run_root: Path, manifest: bytes, check_host: bool, quiet: bool,
                 collider: Path | None = None, **kw):
        self.run_root = run_root
        self.collider = collider
        self.manifest = manifest
        self.check_host = check_host
        self.quiet = quiet
        super().__init__(*args, **kw)

    # routing ----------------------------------------------------------------
    def _route(self) -> tuple[bytes | Path | None, str]:
        raw = self.path.split("?", 1)[0].split("#", 1)[0]
        if raw in ("/", "/index.html"):
            return STATIC_DIR / "index.html", _CONTENT_TYPES[".html"]
        if raw == "/api/scene.json":
            return self.manifest, _CONTENT_TYPES[".json"]
        if raw == COLLIDER_URL and self.collider is not None:
            return self.collider, "model/gltf-binary"
        for prefix, root in (("/static/", STATIC_DIR_REAL), ("/run/", self.run_root)):
            if raw.startswith(prefix):
                try:
                    found = resolve_inside(root, raw[len(prefix):])
                except UnicodeDecodeError:
                    found = None
                if found is None:
                    return None, ""
                ext = found.suffix.lower()
                return found, _CONTENT_TYPES.get(ext) or mimetypes.guess_type(found.name)[0] \
                    or "application/octet-stream"
        return None, ""

    def _host_ok(self) -> bool:
        if not self.check_host:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        if host.startswith("["):
            name = host.split("]", 1)[0] + "]"
        else:
            name = host.rsplit(":", 1)[0] if ":" in host else host
        return name in LOOPBACK_HOSTS

    def _send(self, head_only: bool) -> None:
        if not self._host_ok():
            self._error(HTTPStatus.FORBIDDEN, head_only)
            return
        body, ctype = self._route()
        if body is None:
            self._error(HTTPStatus.NOT_FOUND, head_only)
            return
        stream = None
        if isinstance(body, Path):
            try:
                # streamed in chunks below: a scene.ply of hundreds of MB is never held in memory
                stream = open(body, "rb")
                size = os.fstat(stream.fileno()).st_size
            except OSError:
                if stream is not None:
                    stream.close()
                self._error(HTTPStatus.NOT_FOUND, head_only)
                return
        else:
            size = len(body)
        try:
            self._send_ok(body, stream, size, ctype, head_only)
        finally:
            if stream is not None:
                stream.close()

    def _send_ok(self, body: bytes | Path, stream, size: int, ctype: str, head_only: bool) -> None:
        """Headers, then (GET) the bytes: ``body`` itself, or ``size`` bytes of the open file
        ``stream`` copied ``CHUNK_BYTES`` at a time."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(size))
        # the run may be regenerated between visits: never serve a stale scene from cache
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        if head_only:
            return
        if stream is None:
            self.wfile.write(body)
            return
        left = size         # what Content-Length promised, even if the file grows meanwhile
        while left > 0:
            chunk = stream.read(min(CHUNK_BYTES, left))
            if not chunk:
                break       # the file shrank: the client sees a short body, never a hang
            self.wfile.write(chunk)
            left -= len(chunk)

    def _error(self, status: HTTPStatus, head_only: bool) -> None:
        data = f"{status.value} {status.phrase}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head_only:
            self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._send(head_only=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(head_only=True)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (stdlib signature)
        if not self.quiet:
            super().log_message(format, *args)


STATIC_DIR_REAL = Path(os.path.realpath(STATIC_DIR))


class ViewerServer(ThreadingHTTPServer):
    """The viewer's threading server. Request threads are daemons so Ctrl-C never waits on a
    browser's keep-alive connection (set on this subclass: the standard library's class is
    left as it is)."""

    daemon_threads = True


def make_server(run_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
                quiet: bool = True, collider: str | os.PathLike | None = None) -> ViewerServer:
    """A ready (bound, not yet serving) viewer server for run folder ``run_dir``.

    port: 0 picks a free port (read it back from ``server.server_address``).
    collider: a GLB (glTF +y up) for walk mode, served at /collider.glb, with its spawn.json.
    Raises UserInputError for a bad run folder or collider, a port out of range or one in use.
    """
    if not 0 <= int(port) <= 65535:
        raise UserInputError(f"--port {port}: out of range (0-65535)")
    run = check_run_folder(run_dir)
    collider_path = check_collider(collider) if collider is not None else None
    manifest = json.dumps(build_scene_manifest(run, collider_path)).encode()
    loopback = host in LOOPBACK_HOSTS or host.startswith("127.")
    handler = partial(ViewerHandler, run_root=run, manifest=manifest, check_host=loopback, quiet=quiet,
                      collider=collider_path)
    try:
        server = ViewerServer((host, int(port)), handler)
    except OSError as err:
        import errno

        if err.errno == errno.EADDRINUSE:
            raise UserInputError(f"--port {port}: already in use on {host} (pick another with --port)") from None
        if err.errno in (errno.EACCES, errno.EPERM):
            raise UserInputError(f"--port {port}: not allowed on {host} (ports below 1024 need privileges)") from None
        # unknown name, an address this machine does not have, ...: the user's choice of --host
        raise UserInputError(f"--host {host}: cannot listen on this address ({err.strerror or err})") from None
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    """The page's URL for a server from make_server."""
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    return f"http://{shown}:{port}/"


__all__ = ["make_server", "url_of", "check_run_folder", "resolve_inside", "build_scene_manifest",
           "scene_extent", "scene_reach", "read_spawn", "check_collider", "spawn_beside", "COLLIDER_URL",
           "STATIC_DIR", "ViewerServer", "CHUNK_BYTES"]
