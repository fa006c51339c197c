"""The thread policy (scenedreamer/threads.py) and the one `--threads` call in the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scenedreamer import threads
from scenedreamer.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize("cpus,busy,expected", [
    (2, 0.0, 2),        # quiet: every CPU
    (2, 0.3, 2),        # a little background work leaves room for both threads
    (2, 2.0, 1),        # two `yes` hogs on two cores: one thread (measured: 2 threads ~6x slower)
    (2, 8.0, 1),        # eight hogs: never below one
    (8, 2.6, 5),        # the free cores, rounded to the nearest whole one
    (16, 0.0, 16),
])
def test_automatic_count_is_the_free_cpus(cpus, busy, expected):
    assert threads.choose_threads(None, cpus, busy).threads == expected


def test_asked_for_count_is_used_and_capped_at_the_cpus_with_a_warning():
    assert threads.choose_threads(3, 8, busy=7.0) == threads.ThreadChoice(3, "3 (--threads)")
    choice = threads.choose_threads(64, 4, busy=0.0)
    assert choice.threads == 4 and "only 4 CPUs" in choice.warning
    with pytest.raises(ValueError):
        threads.choose_threads(0, 4, 0.0)


def test_a_standing_omp_num_threads_is_honoured_when_not_asked():
    assert threads.choose_threads(None, 4, busy=0.0, env_threads=1).threads == 1
    assert threads.choose_threads(None, 4, busy=0.0, env_threads=9).threads == 4
    assert threads.choose_threads(2, 4, busy=0.0, env_threads=1).threads == 2     # --threads wins


def test_cgroup_quota_caps_the_cpus(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("50000 100000\n")          # half a CPU -> 1
    assert threads.usable_cpus(cgroup_root=str(tmp_path)) == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")            # unlimited -> the affinity mask
    assert threads.usable_cpus(cgroup_root=str(tmp_path)) == affinity
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("100000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert threads.usable_cpus(cgroup_root=str(v1)) == 1


def test_busy_cores_subtracts_this_process_own_cpu_time(monkeypatch):
    # the machine was busy 3.0 CPU-seconds over 1 s, 1.0 of them ours: 2 other cores busy
    machine = iter([100.0, 103.0])
    own = iter([5.0, 6.0])
    clock = iter([0.0, 1.0])
    monkeypatch.setattr(threads, "_cpu_busy_seconds", lambda stat: next(machine))
    monkeypatch.setattr(threads.time, "process_time", lambda: next(own))
    monkeypatch.setattr(threads.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    assert threads.busy_cores() == pytest.approx(2.0)


def test_busy_cores_reads_a_real_proc_stat():
    assert threads.busy_cores(0.05) >= 0.0


def test_batch_share_per_scene():
    assert threads.share_per_process(8, 3) == 2
    assert threads.share_per_process(2, 4) == 1


def test_configure_sets_torch_and_the_environment_of_children():
    code = ("import os, torch; from scenedreamer.threads import configure; c = configure(1); "
            "print(torch.get_num_threads(), os.environ['OMP_NUM_THREADS'], os.environ['MKL_NUM_THREADS'], "
            "os.environ['OMP_WAIT_POLICY'], c.threads)")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env["PYTHONPATH"] = str(SRC)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1", "1", "PASSIVE", "1"]


def test_batch_gives_each_scene_its_share_in_the_environment():
    code = ("import os; from scenedreamer.threads import configure; "
            "c = configure(2, processes=2, start_torch=False); print(os.environ['OMP_NUM_THREADS'], c.threads)")
    env = dict(os.environ, PYTHONPATH=str(SRC))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]


@pytest.mark.parametrize("value", ["0", "-1"])
@pytest.mark.parametrize("command", [["generate", "a lake"], ["render", "nowhere", "--out", "x.mp4"],
                                     ["export", "nowhere", "--format", "glb", "--out", "x.glb"],
                                     ["eval", "nowhere"], ["batch", "p.txt", "--out", "b"]])
def test_bad_thread_counts_are_one_line_exit_2(command, value, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--threads", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--threads {value}" in err[0]
    assert not any(tmp_path.iterdir())          # nothing written


def test_more_threads_than_cpus_warns_and_goes_on(capsys, tmp_path):
    assert main(["generate", "a lake", "--threads", "999", "--dry-run", "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "warning: --threads 999" in err and "using" in err


def test_a_run_records_the_thread_count_it_used(tmp_path):
    out = tmp_path / "run"
    code = ("import sys; from scenedreamer.cli import main; sys.exit(main(['generate', 'a lake', '--quiet', "
            f"'--threads', '1', '--out', {str(out)!r}, '--resolution', '32x32', '--frames', '2', "
            "'--set', 'init.fit_steps=2', '--set', 'progressive.fit_steps_per_view=1']))")
    env = dict(os.environ, PYTHONPATH=str(SRC))
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=600)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    run = [e for e in events if e["stage"] == "run"]
    assert run and run[0]["metrics"]["threads"] == 1.0
    assert run[0]["metrics"]["work_init"] > 0 and run[0]["metrics"]["work_export"] > 0   # the bar's weights
