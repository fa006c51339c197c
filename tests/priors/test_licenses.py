"""Licences as data (issue 24 item 5): every preset states its licence, no default preset loads
a model with a non-commercial or region-excluded licence, and a run writes licenses.json with
the id, revision, licence and weight hashes of what it loaded. Also the fast presets' config
and their one-line refusals (missing extra parts, fp32 on a CPU without bf16)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path

import pytest
import torch

from scenedreamer.cli import main
from scenedreamer.pipeline.config import PRESETS as RUN_PRESETS, preset_config
from scenedreamer.pipeline.plan import loaded_networks
from scenedreamer.priors.licenses import STAND_IN_LICENSE, model_record
from scenedreamer.priors.model_registry import PRESETS, RESTRICTIONS, find_preset
from tiny_models import tiny_autoencoder, tiny_depth_model, tiny_run_args, tiny_sd_pipeline, write_tiny_lora


def restricted_models(config) -> list[str]:
    """The models a run of ``config`` loads that are not presets (licence unknown) or whose
    licence carries a restriction (non-commercial, region-excluded)."""
    bad = []
    for name in loaded_networks(config):
        preset = find_preset(name)
        if preset is None or preset.restrictions:
            bad.append(name)
    return bad


def test_every_model_preset_states_its_licence_and_revision():
    for preset in PRESETS.values():
        assert preset.license.strip() and preset.revision
        assert set(preset.restrictions) <= set(RESTRICTIONS), preset.name
    # the larger Depth Anything V2 checkpoints are CC-BY-NC: recorded as such
    assert PRESETS["depth-anything-v2-base"].restrictions == ("non-commercial",)
    assert PRESETS["depth-anything-v2-large"].restrictions == ("non-commercial",)
    assert PRESETS["depth-anything-v2-small"].restrictions == ()


@pytest.mark.parametrize("preset", sorted(RUN_PRESETS))
def test_no_default_preset_loads_a_restricted_or_unknown_model(preset):
    assert restricted_models(preset_config(preset)) == []


def test_the_licence_check_catches_a_non_commercial_model():
    """The check above can fail: a fast preset given Depth Anything V2 Base is flagged."""
    config = preset_config("sd15-fast")
    config = dataclasses.replace(config, priors=dataclasses.replace(config.priors, depth="depth-anything-v2-base"))
    assert restricted_models(config) == ["depth-anything-v2-base"]


def test_fast_presets_settings():
    fast = preset_config("sd15-fast")
    pc = fast.priors
    assert (pc.lora, pc.tiny_vae, pc.depth, pc.diffusion.sampler) == ("lcm-lora-sd15", "taesd",
                                                                     "depth-anything-v2-small", "lcm")
    assert pc.diffusion.guidance_scale == 1.0 and fast.refiner.guidance_scale == 1.0   # no CFG with LCM
    assert pc.diffusion.num_inference_steps == 4 and fast.width == fast.height == 512
    assert loaded_networks(fast) == ["sd15", "sd15-inpaint", "depth-anything-v2-small", "lcm-lora-sd15", "taesd"]
    sd2 = preset_config("sd2-fast").priors
    assert (sd2.lora, sd2.tiny_vae, sd2.diffusion.sampler) == ("", "taesd", "dpm-solver++")
    assert sd2.diffusion.guidance_scale > 1.0                      # DPM-Solver++ is not distilled: keeps CFG


def test_fast_preset_missing_extra_parts_named_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    out = tmp_path / "run"
    code = main(["generate", "a lake", "--preset", "sd15-fast", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    for name in ("sd15", "sd15-inpaint", "depth-anything-v2-small", "lcm-lora-sd15", "taesd"):
        assert name in err
    assert "models download --preset sd15-fast" in err and not out.exists()


def test_fast_preset_in_fp32_on_the_cpu_warns_with_the_expected_time(monkeypatch):
    from scenedreamer.pipeline.prior_kinds import BuildContext
    from scenedreamer.priors import loading

    monkeypatch.setattr(loading, "cpu_has_fast_bf16", lambda *a: False)      # a CPU without bf16

    for name, warns in (("sd15-fast", True), ("sd15", False)):
        config = preset_config(name)
        config = dataclasses.replace(config, priors=dataclasses.replace(config.priors, device="cpu", dtype="fp32"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            BuildContext(config, torch.device("cpu"), lambda *a: None).load_config()
        lines = [str(w.message) for w in caught if "bf16" in str(w.message)]
        assert bool(lines) == warns, name
        if warns:
            assert "fp32" in lines[0] and " min" in lines[0]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cached_snapshot_records_commit_licence_and_blob_hash(tmp_path):
    """A Hugging Face cache snapshot: revision = the snapshot's commit, licence from the preset,
    the hash = the blob's name (the hub names LFS blobs by their sha256), equal to the content's."""
    repo = tmp_path / "models--depth-anything--Depth-Anything-V2-Small-hf"
    commit = "a" * 40
    data = b"weights of the tiny stand-in"
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to(blob)
    (snapshot / "config.json").write_text("{}")
    record = model_record("depth-anything-v2-small", snapshot, "depth-anything/Depth-Anything-V2-Small-hf")
    assert record["revision"] == commit and record["license"] == "Apache-2.0"
    assert record["files"] == {"model.safetensors": _sha256(blob)}


@pytest.fixture(scope="module")
def fast_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("fast_run_models")
    pipe = tiny_sd_pipeline(root / "sd")
    tiny_sd_pipeline(root / "sd-inpaint", inpainting=True)
    write_tiny_lora(root / "lora", pipe.unet)
    tiny_autoencoder().save_pretrained(root / "taesd")
    tiny_depth_model("depth_anything", root / "da", depth_estimation_type="relative")
    return root


@pytest.mark.slow
def test_fast_preset_end_to_end_with_tiny_models_writes_licenses_json(fast_models, tmp_path):
    m = fast_models
    out = tmp_path / "run"
    code = main(["generate", "a kitchen", "--preset", "sd15-fast", "--resolution", "64x64", "--out", str(out),
                 "--frames", "3", "--quiet", "--set", "init.fit_steps=4", "--set", "progressive.fit_steps_per_view=3",
                 "--set", "init.neighbour_yaws_deg=[-15]", "--set", "export.video=false",
                 "--set", "export.nerfstudio=false", "--set", "export.distill.steps=5",
                 "--set", "priors.dtype=\"fp32\"", "--set", "priors.device=\"cpu\"",
                 "--set", f"priors.text_to_image=\"{m / 'sd'}\"", "--set", f"priors.refiner=\"{m / 'sd'}\"",
                 "--set", f"priors.inpainter=\"{m / 'sd-inpaint'}\"", "--set", f"priors.depth=\"{m / 'da'}\"",
                 "--set", f"priors.lora=\"{m / 'lora'}\"", "--set", f"priors.tiny_vae=\"{m / 'taesd'}\"",
                 "--set", "refiner.adapter_train_steps_per_view=1", "--set", "progressive.adapter_views=1"])
    assert code == 0
    records = {r["name"]: r for r in json.loads((out / "licenses.json").read_text())["models"]}
    assert set(records) == {str(m / n) for n in ("sd", "sd-inpaint", "da", "lora", "taesd")}
    sd = records[str(m / "sd")]
    assert sd["revision"] == "local folder" and sd["license"].startswith("unknown")
    # the tiny VAE replaced the pipeline's VAE: its weights were not loaded, so not recorded
    assert {f.split("/")[0] for f in sd["files"]} == {"unet", "text_encoder"}
    for name, record in records.items():
        assert record["files"], name
        for rel, digest in record["files"].items():
            assert digest == _sha256(Path(name) / rel)


def test_offline_run_records_its_stand_ins(tmp_path, tmp_path_factory, worker_id):
    from shared_runs import shared_run_copy

    # any offline run will do: the session's shared tiny run (the same arguments; this test made
    # its own "a forest" run before), copied
    out = shared_run_copy(tmp_path_factory, worker_id, "a forest lake", tiny_run_args(), tmp_path / "run")
    records = json.loads((out / "licenses.json").read_text())["models"]
    assert records and all(r["license"] == STAND_IN_LICENSE and not r["files"] for r in records)
    assert {role for r in records for role in r["roles"]} == {"text_to_image", "inpainter", "depth",
                                                              "first_view_depth", "refiner"}


def test_mismatching_lora_in_a_run_is_one_line_before_any_folder(fast_models, tmp_path, capsys):
    from diffusers import UNet2DConditionModel

    m = fast_models
    other = tiny_sd_pipeline().unet
    write_tiny_lora(tmp_path / "wrong-lora", UNet2DConditionModel.from_config({**other.config, "cross_attention_dim": 48}))
    out = tmp_path / "run"
    code = main(["generate", "a kitchen", "--preset", "sd15-fast", "--resolution", "64x64", "--out", str(out),
                 "--quiet", "--set", "priors.dtype=\"fp32\"", "--set", "priors.device=\"cpu\"",
                 "--set", f"priors.text_to_image=\"{m / 'sd'}\"", "--set", f"priors.refiner=\"{m / 'sd'}\"",
                 "--set", f"priors.inpainter=\"{m / 'sd-inpaint'}\"", "--set", f"priors.depth=\"{m / 'da'}\"",
                 "--set", f"priors.lora=\"{tmp_path / 'wrong-lora'}\"", "--set", f"priors.tiny_vae=\"{m / 'taesd'}\""])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "lora_A.weight" in err and "wrong-lora" in err and not out.exists()
