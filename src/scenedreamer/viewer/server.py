"""The local web viewer's HTTP server (Python stdlib only).

URL space (everything else is 404):

    /                      the viewer page (static/index.html)
    /static/<path>         the viewer's own assets (static/, including vendor/ three.js and Spark)
    /run/<path>            a file of the run folder (scene.ply, trajectory.json, config.json, ...)
    /api/scene.json        what the page needs, built here: the prompt, the trajectory and support
                           cameras (OpenCV c2w 4x4 and K in pixels, the run's world frame, which is
                           the PLY's y-down frame) and the scene.ply URL

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


def build_scene_manifest(run: Path) -> dict[str, Any]:
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
    }


class ViewerHandler(BaseHTTPRequestHandler):
    """Serves the viewer page, its assets, the run's files and the scene manifest (GET/HEAD)."""

    server_version = "scenedreamer-view"
    protocol_version = "HTTP/1.1"

    def __init__(self, *args, run_root: Path, manifest: bytes, check_host: bool, quiet: bool, **kw):
        self.run_root = run_root
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
                quiet: bool = True) -> ViewerServer:
    """A ready (bound, not yet serving) viewer server for run folder ``run_dir``.

    port: 0 picks a free port (read it back from ``server.server_address``).
    Raises UserInputError for a bad run folder, a port out of range or one already in use.
    """
    if not 0 <= int(port) <= 65535:
        raise UserInputError(f"--port {port}: out of range (0-65535)")
    run = check_run_folder(run_dir)
    manifest = json.dumps(build_scene_manifest(run)).encode()
    loopback = host in LOOPBACK_HOSTS or host.startswith("127.")
    handler = partial(ViewerHandler, run_root=run, manifest=manifest, check_host=loopback, quiet=quiet)
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
           "STATIC_DIR", "ViewerServer", "CHUNK_BYTES"]
