"""The offline world reads the prompt: every recognised word changes the world it builds, and the
reading says which words chose what and which could not be honoured."""

from __future__ import annotations

import pytest
import torch

from scenedreamer.geometry.cameras import Cameras, intrinsics_from_fov, look_at
from scenedreamer.priors.procedural import ProceduralWorld, ProceduralWorldConfig
from scenedreamer.priors.procedural.shading import apply_palette
from scenedreamer.priors.procedural.vocabulary import (ELEMENTS, FEATURES, LIGHTINGS, PALETTES, STOPWORDS,
                                                       TEMPLATES, VOCABULARY, WEATHERS, parse_prompt)

# small world: the look of every word is checked, not the detail of the terrain
FAST = ProceduralWorldConfig(heightmap_resolution=128, shadow_map_resolution=64, texture_resolution=32,
                             march_steps=48)
S = 40
K = intrinsics_from_fov(60.0, S, S)
# Renders are deterministic: an unchanged world differs by exactly 0. A mean absolute difference
# of 1 % of the colour range is a change a viewer sees, not a few pixels at an edge.
CHANGED = 0.01


def _render(prompt: str, c2w: torch.Tensor) -> torch.Tensor:
    world = ProceduralWorld.from_prompt(prompt, seed=3, config=FAST)
    return world.render(Cameras(K[None], c2w[None], S, S)).rgb[0]


def _change(prompt_a: str, prompt_b: str, c2w: torch.Tensor | None = None) -> float:
    c2w = torch.eye(4) if c2w is None else c2w
    return float((_render(prompt_a, c2w) - _render(prompt_b, c2w)).abs().mean())


def _names(kind: str) -> list[str]:
    return sorted({name for k, name in VOCABULARY.values() if k == kind})


def test_every_word_selects_an_existing_entry_and_its_prompt_reports_it():
    tables = {"template": TEMPLATES, "lighting": LIGHTINGS, "weather": WEATHERS, "palette": PALETTES,
              "element": ELEMENTS}
    for word, (kind, name) in VOCABULARY.items():
        assert name in tables[kind], word
        assert word not in STOPWORDS
        base = "a living room" if kind == "element" and ELEMENTS[name].kind == "indoor" else "a meadow"
        choice = parse_prompt(f"{base} {word}") if kind in ("element", "weather", "palette") else parse_prompt(word)
        assert (kind, name, word) in choice.chosen_by or kind == "template" and choice.template.name == name, word
        assert word in choice.matched, word


@pytest.mark.parametrize("name", _names("template"))
def test_each_template_changes_the_world(name):
    other = "forest" if name == "meadow" else "meadow"
    assert _change(name, other) > CHANGED


@pytest.mark.parametrize("name", _names("lighting"))
def test_each_lighting_changes_the_world(name):
    other = "night" if name == "day" else "day"
    assert _change(f"a meadow at {name}", f"a meadow at {other}") > CHANGED


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_each_feature_word_adds_to_an_outdoor_world(name):
    base = "forest" if name != "forest" else "desert"
    look_down = look_at(torch.zeros(3), torch.tensor([0.0, 0.4, 1.0]))       # the ground ahead, toward the lake
    assert _change(base, f"{base} {name}", look_down) > CHANGED


@pytest.mark.parametrize("name", _names("weather"))
def test_each_weather_changes_the_world(name):
    assert _change("a meadow", f"a meadow {name}") > CHANGED
    assert parse_prompt(f"a meadow {name}").weather == name


@pytest.mark.parametrize("name", _names("palette"))
def test_each_palette_changes_the_world(name):
    assert _change("a meadow", f"a meadow {name}") > CHANGED
    assert parse_prompt(f"a {name} meadow").palette == name


@pytest.mark.parametrize("name", sorted(ELEMENTS))
def test_each_element_is_placed_where_it_is_seen_and_leaves_the_rest_alone(name):
    element = ELEMENTS[name]
    base = "a living room" if element.kind == "indoor" else "a meadow"
    word = next(w for w, (k, n) in VOCABULARY.items() if k == "element" and n == name)
    with_it = ProceduralWorld.from_prompt(f"{base} with a {word}", seed=3, config=FAST)
    placed = [e for e in with_it.scene.elements if e.name == name]
    assert len(placed) == 1 and placed[0].primitives
    anchor = torch.tensor(placed[0].anchor)
    x0, z0, x1, z1 = placed[0].footprint
    if element.kind == "indoor":        # from the middle of the room, looking down onto it
        centre = torch.tensor([0.0, FAST.ground_height - 1.2, FAST.room_front / 3])
        away = (centre - anchor) * torch.tensor([1.0, 0.0, 1.0])
        eye = anchor + 2.5 * away / away.norm() + torch.tensor([0.0, -1.0, 0.0])
    else:                               # from the first camera's side, above the ground
        eye = anchor + torch.tensor([0.0, -1.0, -1.5 * max(x1 - x0, 2.0)])
    towards = look_at(eye, anchor)
    assert _change(base, f"{base} with a {word}", towards) > CHANGED
    if element.kind == "outdoor":
        # elements have their own generator: the view behind the first camera is untouched
        behind = torch.diag(torch.tensor([-1.0, 1.0, -1.0, 1.0]))
        assert _change(base, f"{base} with a {word}", behind) == 0.0


def test_reading_names_the_words_and_what_it_could_not_honour():
    choice = parse_prompt("a watercolor painting of a village with dragons")
    assert choice.palette == "watercolor" and choice.elements == ("cabins",)
    assert ("palette", "watercolor", "watercolor") in choice.chosen_by
    assert ("element", "cabins", "village") in choice.chosen_by
    not_honoured = dict(choice.unhonoured)
    assert set(not_honoured) == {"painting", "dragons"}         # "a", "of", "with" are grammar
    line = choice.describe()
    assert "watercolor palette ('watercolor')" in line and "'dragons'" in line
    record = choice.as_record()
    assert record["palette"] == "watercolor" and record["elements"] == ["cabins"]
    assert {"word": "dragons", "reason": "no offline meaning"} in record["not_honoured"]


def test_an_element_that_does_not_fit_the_world_is_reported_not_placed():
    choice = parse_prompt("a piano in a forest, a castle in a kitchen")
    assert choice.template.name == "forest" and "castle" in choice.elements and "piano" not in choice.elements
    assert any(w == "piano" and "indoor" in why for w, why in choice.unhonoured)


def test_the_cosy_fireplace_and_the_castle_of_the_issue():
    """The prompts that used to ignore their main words (issue 21)."""
    room = ProceduralWorld.from_prompt("a cosy living room with a fireplace", seed=0, config=FAST)
    assert room.choice.world_kind == "indoor" and [e.name for e in room.scene.elements] == ["fireplace"]
    castle = ProceduralWorld.from_prompt("a castle", seed=0, config=FAST)
    assert [e.name for e in castle.scene.elements] == ["castle"]


@pytest.mark.parametrize("palette", sorted(set(PALETTES) - {"natural"}))
def test_palettes_are_functions_of_the_colour_alone(palette):
    """3D consistency: the same colour is styled the same wherever (and in whatever batch) it appears."""
    colours = torch.rand(64, 3, generator=torch.Generator().manual_seed(0))
    styled = apply_palette(colours, palette)
    assert styled.shape == colours.shape and float(styled.min()) >= 0 and float(styled.max()) <= 1
    torch.testing.assert_close(apply_palette(colours.flip(0), palette), styled.flip(0))
    assert float((styled - colours).abs().mean()) > CHANGED
    torch.testing.assert_close(apply_palette(colours, "natural"), colours)


def test_the_design_doc_table_lists_every_word():
    """docs/design/offline-priors.md's vocabulary table is the user's reference: it must match."""
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "design" / "offline-priors.md").read_text()
    listed = {}
    for kind, name, words in re.findall(r"^\| (\w+) \| `(\w+)` \| .*? \| (.*) \|$", doc, flags=re.M):
        for word in words.split(", "):
            listed[word] = (kind, name)
    assert listed == VOCABULARY
