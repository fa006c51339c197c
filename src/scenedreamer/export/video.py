"""MP4 video writing (H.264 through the ffmpeg binary shipped by imageio-ffmpeg).

Frames are piped to ffmpeg as raw RGB. We run ffmpeg ourselves rather than through imageio's
writer because that writer lets ffmpeg print to the user's terminal and never looks at ffmpeg's
exit status: a disk that fills while ffmpeg writes the file's index left a broken video.mp4
and several lines of ffmpeg output. Here ffmpeg's messages go to a buffer, its exit status is
checked, and any failure is one RunFailedError naming the output file; the temp file is removed
and a previous file at the path is kept (the write is atomic, see ``atomic.atomic_path``).
"""

from __future__ import annotations

import errno
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Iterable

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import RunFailedError

CRF = 10
"""x264 constant rate factor (0 lossless .. 51 worst). 10 is what imageio's ``quality=8``, which
this writer used before, maps to ((1 - 8/10) * 51), so videos keep their quality."""
MAX_LOG_BYTES = 64 * 2**10
"""ffmpeg's messages read back to explain a failure (it prints a few lines at "-loglevel error")."""
MAX_REASON_CHARS = 200
"""Longest ffmpeg message quoted in an error line."""


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(H, W, 3) float in [0, 1] -> uint8 numpy (the only place images become bytes for video)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_video(path: str | Path, frames: Iterable[torch.Tensor | np.ndarray], fps: int = 24) -> int:
    """Write frames (each (H, W, 3) float [0, 1] or uint8, all one size) to an H.264 MP4 at
    ``fps`` frames per second, atomically. Returns the frame count.

    Frame sizes are padded to even numbers of pixels (yuv420p needs them). ``frames`` may be a
    lazy iterator: ffmpeg starts at the first frame. Raises RunFailedError naming ``path`` (not
    the temp file) when ffmpeg is missing or fails (disk full, file too large, killed, ...);
    then no temp file is left and a previous file at ``path`` is kept.
    """
    path = Path(path)
    exe = ffmpeg_executable(path)           # before anything is rendered or written
    with atomic_path(path, suffix=".mp4") as tmp:
        return _encode(exe, tmp, path, frames, fps)


def ffmpeg_executable(path: str | Path) -> str:
    """The ffmpeg binary (imageio-ffmpeg's own, or IMAGEIO_FFMPEG_EXE); RunFailedError naming
    the video ``path`` that needs it when there is none."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        raise RunFailedError(f"cannot write {path}: no ffmpeg found (install imageio-ffmpeg, or set "
                             "IMAGEIO_FFMPEG_EXE to an ffmpeg binary)") from None


def _even(arr: np.ndarray) -> np.ndarray:
    h, w = arr.shape[:2]
    if h % 2 or w % 2:
        arr = np.pad(arr, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return np.ascontiguousarray(arr)


def _command(exe: str, out: Path, width: int, height: int, fps: int) -> list[str]:
    return [exe, "-y", "-hide_banner", "-nostats", "-loglevel", "error",
            "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{width}x{height}", "-pix_fmt", "rgb24",
            "-r", f"{float(fps):.02f}", "-i", "-", "-an",
            "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", str(CRF), str(out)]


def _encode(exe: str, tmp: Path, path: Path, frames: Iterable[torch.Tensor | np.ndarray], fps: int) -> int:
    """Pipe ``frames`` through ffmpeg into ``tmp``; failures name ``path``."""
    proc: subprocess.Popen | None = None
    size = None
    count = 0
    stopped_reading = False
    with tempfile.TemporaryFile() as log:
        try:
            for frame in frames:
                arr = _even(to_uint8(frame))
                if proc is None:
                    size = arr.shape
                    proc = _start(_command(exe, tmp, arr.shape[1], arr.shape[0], fps), log, path)
                elif arr.shape != size:
                    raise ValueError(f"write_video: frame {count} is {arr.shape}, the first was {size}")
                try:
                    proc.stdin.write(memoryview(arr).cast("B"))
                except OSError:          # broken pipe: ffmpeg quit; its exit status says why
                    stopped_reading = True
                    break
                count += 1
            if proc is None:
                raise ValueError("write_video: no frames")
            try:
                proc.stdin.close()
            except OSError:
                stopped_reading = True
            status = proc.wait()
        except BaseException:
            # a failed render or Ctrl-C: stop ffmpeg now (atomic_path removes the temp file)
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
        if status != 0 or stopped_reading:
            _raise_failure(path, status, log)
    return count


def _start(command: list[str], log: IO[bytes], path: Path) -> subprocess.Popen:
    try:
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
    except OSError as err:              # the binary vanished or is not executable
        raise RunFailedError(f"cannot write {path}: cannot run ffmpeg {command[0]} "
                             f"({err.strerror or err})") from None


def _raise_failure(path: Path, status: int, log: IO[bytes]) -> None:
    """Raise what ffmpeg's failure means: disk full / file too large as the OSError they are (so
    atomic_path words them like any other write failure, naming ``path``), else RunFailedError
    quoting ffmpeg's own message, one line."""
    log.seek(0)
    text = log.read(MAX_LOG_BYTES).decode("utf-8", "replace")
    lowered = text.lower()
    if "no space left" in lowered or "quota exceeded" in lowered:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    if "file too large" in lowered or status == -signal.SIGXFSZ:
        raise OSError(errno.EFBIG, "File too large", str(path))
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if line != "Conversion failed!"] or lines
    if status == 0:
        reason = "ffmpeg stopped reading frames"
    elif status < 0:
        reason = f"ffmpeg was killed by signal {-status}"
    else:
        reason = f"ffmpeg exited with status {status}"
    if lines:
        quoted = lines[-1] if len(lines[-1]) <= MAX_REASON_CHARS else lines[-1][:MAX_REASON_CHARS - 3] + "..."
        reason += f": {quoted}"
    raise RunFailedError(f"cannot write {path}: {reason}")
