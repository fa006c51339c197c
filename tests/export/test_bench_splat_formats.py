"""benchmarks/bench_splat_formats.py --tiny runs end to end (smoke: the lead times the real sizes)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow          # a tiny generate plus two CLI processes: ~100 s on a busy 2-core machine
def test_bench_splat_formats_tiny_runs_and_reports_every_measure():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_splat_formats", "--tiny"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["cli"]["spz"]["bytes"] > 16 and result["cli"]["gltf-splat"]["bytes"] > 0
    assert [r["sh_degree"] for r in result["spz_encode"]] == [0, 3]
    assert all(r["gaussians"] == 20_000 and r["seconds"] > 0 for r in result["spz_encode"])
    assert "targets" not in result          # no target is judged at the smoke size
