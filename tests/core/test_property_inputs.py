"""Property tests of the two readers of user files: the trajectory reader (transforms.json) and the
config reader (``generate --config``), fed random bytes, random JSON shapes and hostile numbers,
strings and nesting.

The property: a file either parses into a valid object, or the reader raises UserInputError with
a one-line message naming the file; never any other exception. Through the CLI: exit 2 with a
single stderr line and no traceback. Sizes are capped by the strategies (a few KB per file, at
most 30 JSON leaves) so that the whole file runs in well under a minute on one core.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st

from scenedreamer.cli import main
from scenedreamer.config_io import MAX_JSON_NESTING, from_json_dict, load_config, to_json_dict
from scenedreamer.errors import UserInputError
from scenedreamer.geometry.trajectory import Trajectory
from scenedreamer.geometry.trajectory_io import read_transforms_json
from scenedreamer.pipeline.config import GenerateConfig, preset_config

# examples per property: enough to walk every branch of the readers (each property has its own
# strategy), few enough that the file runs in < 60 s on one core (measured ~15 s)
EXAMPLES = 150
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# --- strategies -----------------------------------------------------------------------------

HOSTILE_FLOATS = [math.nan, math.inf, -math.inf, 1e-300, 5e-324, -0.0, 1e300, 1.7976931348623157e308]
HOSTILE_INTS = [2**63, 2**63 - 1, -2**63 - 1, 2**64, 10**400, -10**30]
# ("~nosuchuser/..." is left out: see test_cache_dir_of_an_unknown_user, a known defect)
HOSTILE_STRINGS = ["\ud800", "a\udfffb", "x\ny", "\n", "", " ", "\x00", "/dev/zero", "NaN", "1e999",
                   "type", "frames", "\u202e", "é" * 50]

leaves = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.sampled_from(HOSTILE_INTS),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(HOSTILE_FLOATS),
    st.text(max_size=12), st.sampled_from(HOSTILE_STRINGS),
)
# keys: random text, our own field names (so random shapes reach the checks behind them) and
# hostile strings
FIELD_NAMES = ["frames", "transform_matrix", "fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "prompt",
               "type", "seed", "width", "height", "trajectory", "priors", "params", "representation", "fit"]
keys = st.one_of(st.text(max_size=8), st.sampled_from(FIELD_NAMES), st.sampled_from(HOSTILE_STRINGS))
json_shapes = st.recursive(leaves, lambda children: st.one_of(
    st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=5)), max_leaves=30)


def _dumps(value: Any) -> str:
    """JSON text as Python writes it: NaN/Infinity literals, lone surrogates as \\ud800 escapes."""
    return json.dumps(value, allow_nan=True)


@st.composite
def mutated(draw, document: Any) -> Any:
    """``document`` (plain JSON) with one to three random edits at random places: a value
    replaced by a random shape, a key removed, or a key added."""
    doc = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 3))):
        node = doc
        # walk down a random path; stop at a random depth
        while isinstance(node, (dict, list)) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
            if not isinstance(node[key], (dict, list)) or not node[key]:
                break
            node = node[key]
        if not isinstance(node, (dict, list)) or not node:
            continue
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        edit = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if edit == "replace":
            node[key] = draw(json_shapes)
        elif edit == "delete":
            del node[key]
        elif isinstance(node, dict):
            node[draw(keys)] = draw(json_shapes)
        else:
            node.append(draw(json_shapes))
    return doc


def _raw_tricks(template: str) -> st.SearchStrategy[str]:
    """Texts that JSON encoders cannot produce: nesting beyond the limit, integer literals of
    thousands of digits (Python refuses to convert over 4300), truncated documents. ``template``
    holds one ``{}`` where the value goes."""
    depth = st.integers(0, 4 * MAX_JSON_NESTING)
    return st.one_of(
        depth.map(lambda n: template.format("[" * n + "]" * n)),
        depth.map(lambda n: template.format('{"a": ' * n + "1" + "}" * n)),
        depth.map(lambda n: "[" * n),                                   # unbalanced
        st.integers(1, 6000).map(lambda n: template.format("9" * n)),
        st.integers(1, 6000).map(lambda n: template.format("-" + "9" * n + ".5e-99999")),
        st.sampled_from(['"\\ud800"', '"\\udc00x"', '"a\\u0000b"', "1e99999", "-1e99999", "NaN", "Infinity"])
        .map(template.format),
        st.integers(0, 60).map(lambda n: template.format('"' + '\\"' * n)),   # unterminated string
    )


def _valid_transforms(frames: int = 2) -> dict:
    """A valid transforms.json document with ``frames`` frames and one prompt."""
    matrix = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0.5], [0, 0, 0, 1]]
    return {"camera_model": "OPENCV", "fl_x": 40.0, "fl_y": 40.0, "cx": 16, "cy": 16, "w": 32, "h": 32,
            "frames": [{"file_path": f"images/{i}.png", "transform_matrix": matrix, "prompt": "a room"}
                       for i in range(frames)]}


VALID_CONFIG = to_json_dict(preset_config("offline", "gaussians"))
TRAJECTORY_TEMPLATE = ('{{"w": 32, "h": 32, "fl_x": {}, "frames": [{{"transform_matrix": '
                       '[[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}}]}}')
CONFIG_TEMPLATE = '{{"type": "GenerateConfig", "prompt": "a room", "seed": {}}}'

# --- the property ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def _write(folder: Path, content: str | bytes) -> Path:
    path = folder / "input.json"
    if isinstance(content, str):
        content = content.encode("utf-8", "surrogatepass")     # raw text tricks may hold surrogates
    path.write_bytes(content)
    return path


def _count(outcome: str) -> None:
    """Tally the outcome (shown by pytest --hypothesis-show-statistics: both must occur, or the
    strategy tests only one side)."""
    if currently_in_test_context():
        event(outcome)


def _refused_in_one_line(err: UserInputError, path: Path) -> None:
    message = str(err)
    _count("refused")
    assert "\n" not in message and "\r" not in message, message
    assert message.startswith(str(path)), message          # names the file it is about
    assert len(message) < 400, message                      # a line, not a dump of the input


def _check_trajectory(path: Path) -> None:
    try:
        traj = read_transforms_json(path)
    except UserInputError as err:
        _refused_in_one_line(err, path)
        return
    _count("accepted")
    assert isinstance(traj, Trajectory)
    n = len(traj.cameras)
    assert n >= 1 and len(traj.prompts) == n
    assert isinstance(traj.cameras.width, int) and isinstance(traj.cameras.height, int)
    assert torch.isfinite(traj.cameras.K).all() and torch.isfinite(traj.cameras.c2w).all()
    assert torch.linalg.det(traj.cameras.K.double()).abs().min() > 0     # usable intrinsics
    for prompt in traj.prompts:
        assert prompt is None or isinstance(prompt, str) and prompt.encode("utf-8")


def _check_config(path: Path) -> None:
    try:
        config = load_config(GenerateConfig, path)
    except UserInputError as err:
        _refused_in_one_line(err, path)
        return
    _count("accepted")
    assert isinstance(config, GenerateConfig)
    data = to_json_dict(config)
    # what was accepted can be saved as strict UTF-8 JSON and loads back to the same config
    text = json.dumps(data, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")
    assert from_json_dict(GenerateConfig, json.loads(text)) == config


class TestTrajectoryReader:
    @SETTINGS
    @given(content=st.binary(max_size=2048))
    @example(content=b"\xff\xfe{}")
    @example(content=b"\xef\xbb\xbf{}")                     # a UTF-8 byte-order mark
    def test_random_bytes(self, folder, content):
        _check_trajectory(_write(folder, content))

    @SETTINGS
    @given(document=json_shapes)
    def test_random_json_shapes(self, folder, document):
        _check_trajectory(_write(folder, _dumps(document)))

    @SETTINGS
    @given(document=st.integers(1, 3).flatmap(lambda n: mutated(_valid_transforms(n))))
    @example(document={**_valid_transforms(1), "fl_x": None, "camera_angle_x": 5e-324})
    @example(document={**_valid_transforms(1), "fl_x": 1e-300})
    @example(document={**_valid_transforms(1), "cx": 10**400})
    @example(document={**_valid_transforms(1), "frames": [{"transform_matrix": [[1, 0, 0, 1e300]] * 4}]})
    def test_mutated_valid_files(self, folder, document):
        _check_trajectory(_write(folder, _dumps(document)))

    @SETTINGS
    @given(text=_raw_tricks(TRAJECTORY_TEMPLATE))
    def test_raw_text_tricks(self, folder, text):
        _check_trajectory(_write(folder, text))

    def test_the_unmutated_file_is_valid(self, folder):
        """The mutations start from a file that is read (so a refusal is the mutation's doing)."""
        assert len(read_transforms_json(_write(folder, _dumps(_valid_transforms(3)))).cameras) == 3


class TestConfigReader:
    @SETTINGS
    @given(content=st.binary(max_size=2048))
    def test_random_bytes(self, folder, content):
        _check_config(_write(folder, content))

    @SETTINGS
    @given(document=json_shapes)
    def test_random_json_shapes(self, folder, document):
        _check_config(_write(folder, _dumps(document)))

    @SETTINGS
    @given(document=mutated(VALID_CONFIG))
    @example(document={**VALID_CONFIG, "seed": 2**64})
    @example(document={**VALID_CONFIG, "prompt": "a \ud800 room"})
    @example(document={**VALID_CONFIG, "trajectory": {**VALID_CONFIG["trajectory"], "params": [1, 2]}})
    @example(document={**VALID_CONFIG, "trajectory": {**VALID_CONFIG["trajectory"], "params": {"a\nb": math.nan}}})
    @example(document={**VALID_CONFIG, "trajectory": {**VALID_CONFIG["trajectory"], "file": "\ud800.json"}})
    @example(document={**VALID_CONFIG, "fit": {**VALID_CONFIG["fit"], "lr_scale": 1e-300}})
    @example(document={**VALID_CONFIG, "priors": {**VALID_CONFIG["priors"], "dtype": ["fp32"]}})
    @example(document={**VALID_CONFIG, "unknown\nfield": 1})
    def test_mutated_valid_configs(self, folder, document):
        _check_config(_write(folder, _dumps(document)))

    @SETTINGS
    @given(text=_raw_tricks(CONFIG_TEMPLATE))
    def test_raw_text_tricks(self, folder, text):
        _check_config(_write(folder, text))

    def test_cache_dir_of_an_unknown_user(self, folder):
        # regression: Path.expanduser() raised RuntimeError for the home of an unknown user
        document = {**VALID_CONFIG, "priors": {**VALID_CONFIG["priors"], "cache_dir": "~nosuchuser/hf"}}
        _check_config(_write(folder, _dumps(document)))

    def test_the_unmutated_config_is_valid(self, folder):
        assert load_config(GenerateConfig, _write(folder, _dumps(VALID_CONFIG))) == preset_config("offline", "gaussians")


@pytest.mark.parametrize("make", [lambda d: d, lambda d: d / "fifo", lambda d: Path("/dev/zero")],
                         ids=["folder", "fifo", "dev-zero"])
def test_what_is_not_a_regular_file_is_refused_without_reading(tmp_path, make):
    path = make(tmp_path)
    if path.name == "fifo":
        os.mkfifo(path)                   # opening it would block until a writer comes
    for read in (read_transforms_json, lambda p: load_config(GenerateConfig, p)):
        with pytest.raises(UserInputError) as info:
            read(path)
        _refused_in_one_line(info.value, path)


def test_the_nesting_scan_is_linear_on_escaped_quotes(tmp_path):
    """A string of escaped quotes that never closes: a scan that retried at every quote took
    quadratic time; 1 MB of it must be refused (or read) in well under a second."""
    import time

    path = _write(tmp_path, '{"a": "' + '\\"' * 500_000)
    start = time.perf_counter()
    with pytest.raises(UserInputError, match="not valid JSON"):
        load_config(GenerateConfig, path)
    assert time.perf_counter() - start < 2.0


# --- through the command line ---------------------------------------------------------------


def _cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def _assert_one_line_exit_2(code: int, err: str, path: Path) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and str(path) in err, err


class TestCommandLine:
    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(document=st.one_of(json_shapes, st.integers(1, 2).flatmap(lambda n: mutated(_valid_transforms(n)))))
    def test_trajectory_check(self, folder, document):
        path = _write(folder, _dumps(document))
        code, err = _cli(["trajectory", "--check", str(path)])
        if code != 0:
            _assert_one_line_exit_2(code, err, path)

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(content=st.one_of(st.binary(max_size=512), json_shapes.map(_dumps), _raw_tricks(CONFIG_TEMPLATE),
                             mutated(VALID_CONFIG).map(_dumps)))
    def test_generate_config(self, folder, content):
        path = _write(folder, content)
        code, err = _cli(["generate", "a room", "--config", str(path), "--dry-run", "--out", str(folder / "run")])
        if code != 0:                    # a config that loads may still be refused for what it asks
            assert code == 2, err
            assert err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err, err
        assert not (folder / "run").exists()          # a dry run writes nothing


@pytest.mark.parametrize("content", ['{"seed": ' + "9" * 5000 + "}", "[" * 100_000, '{"prompt": "\\ud800"}'],
                         ids=["5000-digit-int", "deep-nesting", "lone-surrogate"])
def test_real_process_exit_2_one_line(tmp_path, content):
    """The installed entry point (a real process: the interpreter's own stderr encoding and
    recursion limit) with the inputs that used to end in a traceback."""
    path = _write(tmp_path, content)
    proc = subprocess.run([sys.executable, "-m", "scenedreamer.cli", "generate", "--config", str(path),
                           "--dry-run", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=600)
    _assert_one_line_exit_2(proc.returncode, proc.stderr, path)
