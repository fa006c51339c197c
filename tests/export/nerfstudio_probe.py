"""Run by the nerfstudio venv's python (NOT ours): nerfstudio 1.1.5's own NerfstudioDataParser on a
dataset, printing as JSON what tests/export/test_nerfstudio_parser.py checks.

usage: python nerfstudio_probe.py DATASET [--no-auto-scale] [--then [--no-auto-scale]]...
Prints {"error": "ZeroDivisionError"} when the parser raises, else cameras (OpenGL c2w 3x4 in the
parser's frame, fx fy cx cy w h), the scale, the depth file names with the depth nerfstudio reads
from the first one (scene units), and the 3D points (parser frame) of ply_file_path.
Each --then starts another parse of the same dataset with its own flags, in this process (one
nerfstudio import instead of one per parse), printed as its own line in order, each line
starting with MARKER.
"""

import json
import sys
from pathlib import Path

from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.data.utils.data_utils import get_depth_image_from_path

MARKER = "PROBE "
"""Starts each result line (nerfstudio may print to stdout too)."""


def probe(dataset: Path, flags: list[str]) -> dict:
    # splatfacto's own dataparser setting (method_configs.py): load_3D_points=True; "all" puts every
    # frame in the train split so every camera can be checked
    config = NerfstudioDataParserConfig(data=dataset, load_3D_points=True, eval_mode="all",
                                        auto_scale_poses="--no-auto-scale" not in flags)
    try:
        out = config.setup().get_dataparser_outputs(split="train")
    except ZeroDivisionError:
        return {"error": "ZeroDivisionError"}
    cams = out.cameras
    depth_files = out.metadata["depth_filenames"]
    first = get_depth_image_from_path(depth_files[0], int(cams.height[0]), int(cams.width[0]),
                                      scale_factor=out.metadata["depth_unit_scale_factor"])
    return {
        "images": [p.name for p in out.image_filenames],
        "c2w": cams.camera_to_worlds.tolist(),
        "fx": cams.fx[:, 0].tolist(), "fy": cams.fy[:, 0].tolist(),
        "cx": cams.cx[:, 0].tolist(), "cy": cams.cy[:, 0].tolist(),
        "w": cams.width[:, 0].tolist(), "h": cams.height[:, 0].tolist(),
        "scale": out.dataparser_scale,
        "transform": out.dataparser_transform.tolist(),
        "depth_files": [p.name for p in depth_files],
        "depth0": first[..., 0].tolist(),
        "points": out.metadata["points3D_xyz"].tolist(),
        "points_rgb": out.metadata["points3D_rgb"].tolist(),
    }


runs: list[list[str]] = [[]]
for arg in sys.argv[2:]:
    if arg == "--then":
        runs.append([])
    else:
        runs[-1].append(arg)
for flags in runs:
    print(MARKER + json.dumps(probe(Path(sys.argv[1]), flags)), flush=True)
