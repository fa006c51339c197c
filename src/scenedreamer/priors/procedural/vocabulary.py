"""The prompt vocabulary of the procedural world: words -> scene template and lighting palette.

A prompt is lower-cased and split into words. The FIRST word (in prompt order) that names a
template chooses the template; the first word that names a lighting chooses the lighting. Further
outdoor template words add that template's main feature to an outdoor scene (``FEATURES``: "a
forest lake" is a forest with a lake, "snowy mountains" snow with high mountains). Unknown
words are ignored; with no template word the world is a grassy ``meadow``, with no lighting word
it is ``day``. ``VOCABULARY`` maps every recognised word to what it selects and is the table in
docs/design/offline-priors.md.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Template:
    """What is in the scene. Outdoor terrain lengths in metres, elevations positive up."""

    name: str
    kind: str
    """"outdoor" (terrain + water + trees/rocks), "city" (flat streets + buildings) or "indoor" (a room)."""
    hill_amplitude: float = 1.5
    """Peak-to-mean height of the rolling hills (m)."""
    mountain_amplitude: float = 0.0
    """Height of the distant ridged mountains (m); 0 for none."""
    dune_amplitude: float = 0.0
    """Height of wind-blown dunes (m); 0 for none."""
    water_level: float | None = None
    """Elevation of the water plane (m, ground at the camera is 0); None for no water."""
    lake: bool = False
    """Carve a lake basin ahead of the first camera (with water_level)."""
    sea: bool = False
    """Let the ground fall into the sea beyond a shoreline ahead of the first camera."""
    tree_spacing: float = 0.0
    """Mean distance between trees (m); 0 for no trees."""
    tree_style: str = "pine"
    """"pine" (stacked cones) or "broadleaf" (round crown)."""
    rock_spacing: float = 0.0
    """Mean distance between rocks (m); 0 for no rocks."""
    ground_color: RGB = (0.30, 0.45, 0.18)
    """Albedo of the low ground (grass, sand, snow)."""
    high_color: RGB = (0.42, 0.40, 0.38)
    """Albedo of steep or high ground (rock)."""
    shore_color: RGB = (0.76, 0.70, 0.50)
    """Albedo of the ground just above the water line (sand)."""
    shore_width: float = 0.3
    """Height above the water line up to which the ground is shore-coloured (m)."""
    snow_line: float | None = None
    """Elevation above which the ground is snow (m); None for no snow caps."""
    foliage_color: RGB = (0.13, 0.30, 0.12)
    """Albedo of tree foliage."""
    trunk_color: RGB = (0.30, 0.20, 0.12)
    """Albedo of tree trunks."""
    rock_color: RGB = (0.45, 0.43, 0.40)
    """Albedo of rocks."""
    water_color: RGB = (0.05, 0.18, 0.22)
    """Colour of deep water (seen where the sky reflection is weak)."""
    wall_color: RGB = (0.80, 0.76, 0.68)
    """Indoor walls (or city building facades)."""
    floor_color: RGB = (0.55, 0.38, 0.22)
    """Indoor floor (or city pavement)."""
    floor_pattern: str = "planks"
    """"planks", "tiles" or "carpet" (indoor); the city uses "asphalt"."""
    furniture: str = ""
    """Indoor furniture set: "living", "kitchen", "bedroom" or "office"."""


@dataclass(frozen=True)
class Lighting:
    """Sun, sky and fog. Angles in degrees; colours linear-ish RGB in [0, 1] (sun may exceed 1)."""

    name: str
    sun_azimuth: float
    """Sun direction around the vertical axis, 0 = straight ahead (+z), 90 = right (+x)."""
    sun_elevation: float
    """Sun height above the horizon."""
    sun_color: RGB
    """Direct light colour and strength."""
    sky_zenith: RGB
    """Sky colour straight up."""
    sky_horizon: RGB
    """Sky colour at the horizon; also the fog colour."""
    ambient: float
    """Strength of the sky's ambient light relative to the sky colour."""
    fog_density: float
    """Exponential fog density per metre of ray length."""
    clouds: float = 0.4
    """Cloud cover in [0, 1]."""
    stars: bool = False
    """Draw stars and a moon (night)."""
    lamps: float = 0.0
    """Strength of artificial light: lit windows in the city, the ceiling light indoors."""


TEMPLATES: dict[str, Template] = {t.name: t for t in [
    Template("meadow", "outdoor", hill_amplitude=2.0, tree_spacing=14.0, tree_style="broadleaf",
             rock_spacing=18.0),
    Template("forest", "outdoor", hill_amplitude=2.5, tree_spacing=6.0, tree_style="pine",
             rock_spacing=20.0, ground_color=(0.20, 0.30, 0.12), foliage_color=(0.08, 0.24, 0.10)),
    Template("beach", "outdoor", hill_amplitude=0.6, water_level=-0.6, sea=True, rock_spacing=25.0,
             shore_width=1.5,
             ground_color=(0.80, 0.72, 0.52), high_color=(0.70, 0.62, 0.45),
             shore_color=(0.68, 0.60, 0.42), water_color=(0.02, 0.22, 0.30)),
    Template("desert", "outdoor", hill_amplitude=1.0, dune_amplitude=3.0, rock_spacing=30.0,
             ground_color=(0.85, 0.66, 0.40), high_color=(0.72, 0.50, 0.30),
             shore_color=(0.85, 0.66, 0.40), rock_color=(0.60, 0.40, 0.26)),
    Template("snow", "outdoor", hill_amplitude=2.5, mountain_amplitude=25.0, tree_spacing=10.0,
             tree_style="pine", ground_color=(0.92, 0.94, 0.97), high_color=(0.55, 0.56, 0.60),
             shore_color=(0.92, 0.94, 0.97), snow_line=4.0, foliage_color=(0.10, 0.22, 0.14)),
    Template("mountain", "outdoor", hill_amplitude=3.0, mountain_amplitude=45.0, tree_spacing=12.0,
             tree_style="pine", rock_spacing=15.0, snow_line=25.0, ground_color=(0.28, 0.40, 0.18)),
    Template("lake", "outdoor", hill_amplitude=2.0, mountain_amplitude=18.0, water_level=-0.4,
             lake=True, tree_spacing=11.0, tree_style="pine", rock_spacing=20.0),
    Template("city", "city", hill_amplitude=0.0, wall_color=(0.62, 0.58, 0.54),
             floor_color=(0.22, 0.22, 0.23), floor_pattern="asphalt"),
    Template("room", "indoor", furniture="living"),
    Template("kitchen", "indoor", wall_color=(0.90, 0.88, 0.82), floor_color=(0.75, 0.74, 0.70),
             floor_pattern="tiles", furniture="kitchen"),
    Template("bedroom", "indoor", wall_color=(0.70, 0.74, 0.80), floor_color=(0.50, 0.34, 0.20),
             furniture="bedroom"),
    Template("office", "indoor", wall_color=(0.78, 0.78, 0.76), floor_color=(0.30, 0.32, 0.36),
             floor_pattern="carpet", furniture="office"),
]}

LIGHTINGS: dict[str, Lighting] = {l.name: l for l in [
    Lighting("day", sun_azimuth=35.0, sun_elevation=40.0, sun_color=(1.05, 1.0, 0.92),
             sky_zenith=(0.25, 0.45, 0.80), sky_horizon=(0.72, 0.82, 0.92), ambient=0.55,
             fog_density=0.006, clouds=0.35),
    Lighting("sunset", sun_azimuth=-20.0, sun_elevation=6.0, sun_color=(1.2, 0.62, 0.30),
             sky_zenith=(0.22, 0.25, 0.50), sky_horizon=(0.98, 0.58, 0.32), ambient=0.45,
             fog_density=0.008, clouds=0.45, lamps=0.3),
    Lighting("night", sun_azimuth=60.0, sun_elevation=35.0, sun_color=(0.22, 0.27, 0.40),
             sky_zenith=(0.01, 0.02, 0.06), sky_horizon=(0.05, 0.07, 0.14), ambient=0.35,
             fog_density=0.01, clouds=0.1, stars=True, lamps=1.0),
    Lighting("fog", sun_azimuth=30.0, sun_elevation=30.0, sun_color=(0.45, 0.45, 0.45),
             sky_zenith=(0.68, 0.70, 0.73), sky_horizon=(0.78, 0.79, 0.80), ambient=0.85,
             fog_density=0.07, clouds=0.0),
]}

# What a secondary outdoor template word adds to an outdoor template (fields of Template).
FEATURES: dict[str, dict] = {
    "forest": dict(tree_spacing=6.0, tree_style="pine"),
    "lake": dict(water_level=-0.4, lake=True),
    "beach": dict(water_level=-0.6, sea=True, shore_width=1.5),
    "mountain": dict(mountain_amplitude=45.0, snow_line=25.0),
    "snow": dict(ground_color=(0.92, 0.94, 0.97), shore_color=(0.92, 0.94, 0.97), snow_line=4.0),
    "desert": dict(dune_amplitude=3.0, ground_color=(0.85, 0.66, 0.40), tree_spacing=0.0),
    "meadow": dict(tree_spacing=14.0, tree_style="broadleaf"),
}

# word -> ("template" | "lighting", name). Keep this table and the design doc's table in sync.
VOCABULARY: dict[str, tuple[str, str]] = {}
for _name, _words in {
    "meadow": "meadow meadows field fields grass grassland hill hills countryside park garden valley",
    "forest": "forest forests wood woods woodland jungle trees pine pines",
    "beach": "beach beaches sea ocean coast coastal shore seaside island tropical",
    "desert": "desert deserts dune dunes sand sandy sahara canyon",
    "snow": "snow snowy winter arctic ice icy glacier frozen",
    "mountain": "mountain mountains alps alpine peak peaks cliff cliffs highlands",
    "lake": "lake lakes river pond lakeside",
    "city": "city cities street streets town downtown urban village buildings skyscrapers",
    "room": "room rooms indoor indoors interior house apartment hall hallway lounge living",
    "kitchen": "kitchen kitchens cafe restaurant",
    "bedroom": "bedroom bedrooms bed hotel",
    "office": "office offices study library classroom",
}.items():
    for _w in _words.split():
        VOCABULARY[_w] = ("template", _name)
for _name, _words in {
    "day": "day daytime noon sunny morning bright",
    "sunset": "sunset sunsets dusk evening golden sunrise dawn twilight",
    "night": "night nighttime midnight moon moonlight moonlit starry stars dark",
    "fog": "fog foggy mist misty haze hazy overcast cloudy rainy",
}.items():
    for _w in _words.split():
        VOCABULARY[_w] = ("lighting", _name)


@dataclass(frozen=True)
class SceneChoice:
    """What a prompt selected: the template, the lighting and the words that chose them."""

    template: Template
    lighting: Lighting
    matched: tuple[str, ...]


def parse_prompt(prompt: str) -> SceneChoice:
    """Choose template and lighting from the prompt's words (first match of each kind wins)."""
    template_name = lighting_name = None
    features: list[str] = []
    matched: list[str] = []
    for word in re.findall(r"[a-z]+", prompt.lower()):
        entry = VOCABULARY.get(word)
        if entry is None:
            continue
        kind, name = entry
        if kind == "template" and template_name is None:
            template_name = name
            matched.append(word)
        elif kind == "template" and name in FEATURES and name != template_name and name not in features:
            features.append(name)
            matched.append(word)
        elif kind == "lighting" and lighting_name is None:
            lighting_name = name
            matched.append(word)
    template = TEMPLATES[template_name or "meadow"]
    if template.kind == "outdoor":
        for name in features:
            template = dataclasses.replace(template, **FEATURES[name])
        if features:
            template = dataclasses.replace(template, name="+".join([template.name, *features]))
    return SceneChoice(template, LIGHTINGS[lighting_name or "day"], tuple(matched))
