"""`scenedreamer models list` starts fast (issue 24): it imports neither torch nor diffusers /
transformers (checked in a fresh interpreter's sys.modules, not by the clock: the 2 s target is
the lead's benchmark, `python -X importtime`), and it shows every preset's licence."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PROBE = ("import sys\nfrom scenedreamer.cli import main\ncode = main(sys.argv[1:])\n"
         "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules)\n"
         "print('HEAVY', ','.join(heavy) or '-', 'EXIT', code, file=sys.stderr)\n")


def test_models_list_imports_no_torch_and_shows_licences(tmp_path):
    from scenedreamer.priors.model_registry import PRESETS

    env = dict(os.environ, PYTHONPATH=str(SRC), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", PROBE, "models", "list", "--cache-dir", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.stderr.strip().splitlines()[-1] == "HEAVY - EXIT 0", out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    for preset in PRESETS.values():
        assert preset.license in lines[preset.name]
        assert ("non-commercial" in lines[preset.name]) == ("non-commercial" in preset.restrictions)
