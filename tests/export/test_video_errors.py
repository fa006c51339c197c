"""Video writer failures: whatever ffmpeg does (disk full, file too large, a broken pipe, killed,
missing), the user gets one line naming the output file, the temp file is gone and an earlier
video at the path is kept. Fake ffmpeg binaries (shell scripts, through IMAGEIO_FFMPEG_EXE, which
imageio-ffmpeg honours first) play each failure; a real ffmpeg under a file size limit
(RLIMIT_FSIZE, which works as root, unlike permission tests) plays the real one."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import imageio.v2 as imageio
import numpy as np
import pytest

from scenedreamer.atomic import is_temp_file
from scenedreamer.cli import main
from scenedreamer.errors import RunFailedError
from scenedreamer.export.video import write_video
from tiny_models import tiny_run_args

# what ffmpeg 7 prints at -loglevel error when the disk fills / the size limit is hit
FAKES = {
    "disk-full": ("head -c 1000 >/dev/null\n"
                  "echo '[out#0/mp4 @ 0x55] Error writing trailer: No space left on device' >&2\n"
                  "echo 'Conversion failed!' >&2\nexit 1",
                  "disk full while writing {path}"),
    "file-too-large": ("head -c 1000 >/dev/null\n"
                       "echo 'av_interleaved_write_frame(): File too large' >&2\nexit 1",
                       "file too large while writing {path}"),
    "broken-pipe": ("echo 'Conversion failed!' >&2\nexit 1",          # quits before reading a frame
                    "cannot write {path}: ffmpeg exited with status 1: Conversion failed!"),
    "killed": ("head -c 1000 >/dev/null\nkill -9 $$",
               "cannot write {path}: ffmpeg was killed by signal 9"),
    "reads-all-then-fails": ("cat >/dev/null\necho '[libx264 @ 0x1] broken\n  encoder' >&2\nexit 3",
                             "cannot write {path}: ffmpeg exited with status 3: encoder"),
}


def _fake_ffmpeg(folder, body: str):
    script = folder / "ffmpeg"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _frames(n: int = 12, size: tuple[int, int] = (32, 48)):
    rng = np.random.default_rng(0)
    for _ in range(n):
        yield rng.random((*size, 3), dtype=np.float32)     # noise: ffmpeg cannot compress it away


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if is_temp_file(p.name))


@pytest.mark.parametrize("name", sorted(FAKES))
def test_ffmpeg_failure_is_one_line_naming_the_output_and_keeps_the_old_video(tmp_path, monkeypatch, name):
    body, expected = FAKES[name]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "video.mp4"
    target.write_bytes(b"the earlier video")
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(_fake_ffmpeg(tmp_path, body)))
    with pytest.raises(RunFailedError) as info:
        write_video(target, _frames())
    message = str(info.value)
    assert message.startswith(expected.format(path=target)), message
    assert "\n" not in message and ".video.mp4." not in message     # never the temp file's name
    assert target.read_bytes() == b"the earlier video"
    assert _leftovers(out_dir) == []


def test_missing_ffmpeg_fails_before_a_frame_is_rendered(tmp_path, monkeypatch):
    import imageio_ffmpeg

    def no_ffmpeg():
        raise RuntimeError("No ffmpeg exe could be found.")

    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", no_ffmpeg)
    rendered = []

    def frames():
        for frame in _frames(3):
            rendered.append(1)
            yield frame

    with pytest.raises(RunFailedError, match=r"cannot write .*v\.mp4: no ffmpeg found"):
        write_video(tmp_path / "v.mp4", frames())
    assert rendered == [] and list(tmp_path.iterdir()) == []


def test_ffmpeg_that_cannot_be_run_names_the_output(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "no-such-ffmpeg"))
    with pytest.raises(RunFailedError, match=r"cannot write .*v\.mp4: cannot run ffmpeg .*no-such-ffmpeg"):
        write_video(tmp_path / "v.mp4", _frames(2))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error", [RuntimeError("render failed"), KeyboardInterrupt()],
                         ids=["render-error", "ctrl-c"])
def test_a_failing_frame_source_stops_ffmpeg_and_leaves_no_temp(tmp_path, error):
    def frames():
        yield from _frames(3)
        raise error

    with pytest.raises(type(error)):
        write_video(tmp_path / "v.mp4", frames())
    assert list(tmp_path.iterdir()) == []


def test_a_good_video_still_has_every_frame_at_even_size(tmp_path):
    assert write_video(tmp_path / "v.mp4", _frames(5, (33, 47)), fps=12) == 5
    reader = imageio.get_reader(str(tmp_path / "v.mp4"))
    try:
        frames = [np.asarray(f) for f in reader]
        assert reader.get_meta_data()["fps"] == 12
    finally:
        reader.close()
    assert len(frames) == 5 and frames[0].shape == (34, 48, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


CHILD = textwrap.dedent("""
    import json, os, resource, signal, sys
    import numpy as np
    if sys.argv[2] == "ignore":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)    # inherited by ffmpeg: write() gets EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
    from scenedreamer.errors import RunFailedError
    from scenedreamer.export.video import write_video
    rng = np.random.default_rng(0)
    try:
        write_video(sys.argv[1], (rng.random((64, 64, 3), dtype=np.float32) for _ in range(20)))
        print(json.dumps({"error": None}))
    except RunFailedError as err:
        print(json.dumps({"error": str(err)}))
""")


@pytest.mark.parametrize("sigxfsz", ["ignore", "default"])
def test_a_real_file_size_limit(tmp_path, sigxfsz):
    """Real ffmpeg, real EFBIG: 20 frames of 64x64 noise need ~200 KB, the limit is 20 KB. With
    SIGXFSZ ignored ffmpeg's write fails with EFBIG; by default the signal kills ffmpeg."""
    target = tmp_path / "video.mp4"
    env = {k: v for k, v in os.environ.items() if k != "IMAGEIO_FFMPEG_EXE"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(target), sigxfsz], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    error = json.loads(proc.stdout.strip().splitlines()[-1])["error"]
    assert error is not None and error.startswith(f"file too large while writing {target}"), error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_generate_and_render_report_a_video_failure_in_one_line_and_resume_finishes(tmp_path, monkeypatch, capsys):
    """Through the CLI: `generate` whose video fails exits 1 with one line naming RUN/video.mp4,
    keeps every committed step (resume then writes the video), and `render` does the same."""
    run = tmp_path / "run"
    args = ["generate", "a forest lake", "--out", str(run), *tiny_run_args("48x32", 3),
            "--set", "export.video=true", "--set", "export.video_frames_per_view=1"]
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(_fake_ffmpeg(tmp_path, FAKES["disk-full"][0])))
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err == f"scenedreamer generate: failed: disk full while writing {run / 'video.mp4'}\n"
    assert not (run / "video.mp4").exists() and _leftovers(run) == []
    assert main(["render", str(run), "--out", str(tmp_path / "v.mp4"), "--frames", "3", "--quiet"]) == 1
    assert capsys.readouterr().err == f"scenedreamer render: failed: disk full while writing {tmp_path / 'v.mp4'}\n"
    assert _leftovers(tmp_path) == []

    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE")
    assert main(args + ["--resume"]) == 0
    assert (run / "video.mp4").stat().st_size > 0 and _leftovers(run) == []
