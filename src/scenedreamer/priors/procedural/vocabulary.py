"""The prompt vocabulary of the procedural world: words -> what the offline world is made of.

A prompt is lower-cased and split into words. Five kinds of word are read (``VOCABULARY`` maps
every recognised word to its kind and what it selects; it is the table in
docs/design/offline-priors.md):

- template: the FIRST template word (in prompt order) chooses the world (meadow, forest, lake,
  city, a furnished room, ...). Further outdoor template words add that template's main feature
  to an outdoor world (``FEATURES``: "a forest lake" is a forest with a lake). None: ``meadow``.
- lighting: the first lighting word chooses sun, sky and fog (day, sunset, night, fog). None: ``day``.
- weather: the first weather word changes lighting and ground (``WEATHERS``: rain, snowfall).
- palette: the first palette word restyles every colour the world renders (``PALETTES``:
  watercolor, toon, pastel, sepia, monochrome, noir).
- element: every element word places that element in the world (``ELEMENTS``: a castle, ruins,
  a tower, cabins, a campfire, a lighthouse outdoors; a fireplace, a piano, plants, a bookcase, a
  dining table indoors). An element that does not fit the world's kind is not placed and is
  reported.

``parse_prompt`` returns a ``SceneChoice`` that also says which words chose what and which words
the offline world could not honour (``SceneChoice.describe``): the run prints it and records it.
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
    elements: tuple[str, ...] = ()
    """Names in ELEMENTS placed in this world (landmarks outdoors, furniture indoors)."""
    palette: str = "natural"
    """Name in PALETTES: the colour style of everything the world renders."""


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

@dataclass(frozen=True)
class Weather:
    """What the weather changes: the lighting (sky, sun, fog) and the template (ground)."""

    name: str
    description: str
    lighting: dict
    """Lighting fields multiplied (``*_scale``) or replaced (plain names) by the weather."""
    template: dict
    """Template fields replaced by the weather (snow cover, wet ground)."""


WEATHERS: dict[str, Weather] = {w.name: w for w in [
    Weather("rain", "overcast grey sky, dim sun, rain haze, dark wet ground",
            lighting=dict(sky_zenith=(0.30, 0.33, 0.37), sky_horizon=(0.50, 0.53, 0.56), sun_color_scale=0.35,
                          fog_density=0.035, clouds=0.9, ambient=0.7),
            template=dict(ground_color_scale=0.6, high_color_scale=0.65, shore_color_scale=0.6,
                          floor_color_scale=0.55, water_color=(0.04, 0.10, 0.12))),
    Weather("snowfall", "white overcast sky, snow haze, snow on the ground",
            lighting=dict(sky_zenith=(0.62, 0.66, 0.72), sky_horizon=(0.82, 0.84, 0.87), sun_color_scale=0.5,
                          fog_density=0.03, clouds=0.85, ambient=0.8),
            template=dict(ground_color=(0.92, 0.94, 0.97), shore_color=(0.92, 0.94, 0.97), snow_line=-2.0,
                          floor_color=(0.88, 0.89, 0.92), foliage_color=(0.55, 0.62, 0.60))),
]}


@dataclass(frozen=True)
class Palette:
    """A colour style applied to every rendered colour (shading.apply_palette); a function of the
    colour alone, so every view of a point agrees (the scene stays 3D consistent)."""

    name: str
    description: str


PALETTES: dict[str, Palette] = {p.name: p for p in [
    Palette("natural", "the world's own colours"),
    Palette("watercolor", "light washed-out pigments on white paper, softened contrast"),
    Palette("toon", "saturated flat colours in a few light bands (cel shading)"),
    Palette("pastel", "soft, light, low-saturation colours"),
    Palette("sepia", "old-photograph brown tones"),
    Palette("monochrome", "grey levels only"),
    Palette("noir", "high-contrast grey levels"),
]}


@dataclass(frozen=True)
class Element:
    """A landmark or piece of furniture placed in the world (built by scene.build_element)."""

    name: str
    kind: str
    """the world kind it can stand in: "outdoor" or "indoor" """
    description: str


ELEMENTS: dict[str, Element] = {e.name: e for e in [
    Element("castle", "outdoor", "a stone castle: curtain walls, four round towers with roofs, a keep"),
    Element("ruins", "outdoor", "broken stone columns and wall fragments"),
    Element("tower", "outdoor", "a tall round stone tower with a conical roof"),
    Element("cabins", "outdoor", "a few wooden cabins with roofs"),
    Element("campfire", "outdoor", "a ring of stones with a glowing fire"),
    Element("lighthouse", "outdoor", "a white lighthouse with red bands and a lit lantern"),
    Element("fireplace", "indoor", "a stone fireplace with a glowing fire on the left wall"),
    Element("piano", "indoor", "an upright piano with its bench"),
    Element("plants", "indoor", "potted plants"),
    Element("bookcase", "indoor", "a tall bookcase full of books"),
    Element("dining_table", "indoor", "a white dining table with four wooden chairs"),
]}

# Grammar words that carry no content: never reported as "not honoured".
STOPWORDS = frozenset("""a an the of with and or in on at by from into onto over under near beside
    behind through for to its their his her my our your some many few very this that these those is
    are was be there here where which who view scene image picture photo photograph""".split())

# word -> (kind, name). Keep this table and the design doc's table in sync.
VOCABULARY: dict[str, tuple[str, str]] = {}
for _name, _words in {
    "meadow": "meadow meadows field fields grass grassland hill hills countryside park garden valley",
    "forest": "forest forests wood woods woodland jungle trees pine pines",
    "beach": "beach beaches sea ocean coast coastal shore seaside island tropical",
    "desert": "desert deserts dune dunes sand sandy sahara canyon",
    "snow": "snow snowy winter arctic ice icy glacier frozen",
    "mountain": "mountain mountains alps alpine peak peaks cliff cliffs highlands",
    "lake": "lake lakes river pond lakeside",
    "city": "city cities street streets town downtown urban buildings skyscrapers",
    "room": "room rooms indoor indoors interior house apartment hall hallway lounge living sofa couch "
            "cosy cozy attic",
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
    "fog": "fog foggy mist misty haze hazy overcast cloudy",
}.items():
    for _w in _words.split():
        VOCABULARY[_w] = ("lighting", _name)
for _name, _words in {
    "rain": "rain rainy raining rainfall drizzle storm stormy thunderstorm wet puddles",
    "snowfall": "snowing snowfall snowstorm blizzard snowflakes",
}.items():
    for _w in _words.split():
        VOCABULARY[_w] = ("weather", _name)
for _name, _words in {
    "watercolor": "watercolor watercolour watercolors aquarelle",
    "toon": "toon cartoon cartoonish anime cel comic",
    "pastel": "pastel pastels",
    "sepia": "sepia vintage antique",
    "monochrome": "monochrome grayscale greyscale monochromatic",
    "noir": "noir",
}.items():
    for _w in _words.split():
        VOCABULARY[_w] = ("palette", _name)
for _name, _words in {
    "castle": "castle castles fortress citadel palace fort",
    "ruins": "ruins ruin ruined temple columns",
    "tower": "tower towers",
    "cabins": "cabin cabins cottage cottages hut huts village hamlet farmhouse chalet",
    "campfire": "campfire bonfire",
    "lighthouse": "lighthouse",
    "fireplace": "fireplace hearth",
    "piano": "piano",
    "plants": "plant plants houseplant houseplants",
    "bookcase": "bookcase bookcases bookshelf bookshelves books",
    "dining_table": "dining table tables chairs",
}.items():
    for _w in _words.split():
        VOCABULARY[_w] = ("element", _name)


@dataclass(frozen=True)
class SceneChoice:
    """What a prompt selected and why.

    template, lighting: the (weather-adjusted) template and lighting the world is built from.
    matched: every word that chose something, in prompt order.
    weather, palette: names in WEATHERS ("" = clear) and PALETTES.
    elements: names in ELEMENTS placed in the world, in prompt order.
    chosen_by: (what, name, word) for every choice, e.g. ("element", "castle", "fortress").
    unhonoured: (word, reason) for every content word the offline world could not honour.
    """

    template: Template
    lighting: Lighting
    matched: tuple[str, ...]
    weather: str = ""
    palette: str = "natural"
    elements: tuple[str, ...] = ()
    chosen_by: tuple[tuple[str, str, str], ...] = ()
    unhonoured: tuple[tuple[str, str], ...] = ()

    @property
    def world_kind(self) -> str:
        """"outdoor", "city" or "indoor"."""
        return self.template.kind

    def describe(self) -> str:
        """One line: how the prompt was read, with the words behind each choice, e.g. "outdoor
        world 'forest+lake' ('forest', 'lake'); sunset light ('sunset'); with castle ('castle');
        not honoured offline: 'dragons' (no offline meaning)"."""
        def by(*whats: str, name: str | None = None) -> str:
            found = [repr(w) for what, n, w in self.chosen_by if what in whats and (name is None or n == name)]
            return f" ({', '.join(found)})" if found else " (default)"

        parts = [f"{self.world_kind} world {self.template.name!r}" + by("template", "feature"),
                 f"{self.lighting.name} light" + by("lighting")]
        if self.weather:
            parts.append(self.weather + by("weather"))
        if self.palette != "natural":
            parts.append(f"{self.palette} palette" + by("palette"))
        if self.elements:
            parts.append("with " + ", ".join(e.replace("_", " ") + by("element", name=e) for e in self.elements))
        line = "; ".join(parts)
        if self.unhonoured:
            line += "; not honoured offline: " + ", ".join(f"{w!r} ({why})" for w, why in self.unhonoured)
        return line

    def as_record(self) -> dict:
        """JSON-ready record of the reading (a run keeps it as `prompt_reading` in config.json and scene.json)."""
        return {"world_kind": self.world_kind, "template": self.template.name, "lighting": self.lighting.name,
                "weather": self.weather or "clear", "palette": self.palette, "elements": list(self.elements),
                "chosen_by": [{"what": what, "name": name, "word": word} for what, name, word in self.chosen_by],
                "not_honoured": [{"word": w, "reason": why} for w, why in self.unhonoured]}


def _scaled(obj, changes: dict):
    """dataclasses.replace where a key ``f_scale`` multiplies the (colour) field f."""
    out = {}
    for key, value in changes.items():
        if key.endswith("_scale"):
            name = key[:-len("_scale")]
            out[name] = tuple(min(1.5, c * value) for c in getattr(obj, name))
        else:
            out[key] = value
    return dataclasses.replace(obj, **out)


def parse_prompt(prompt: str) -> SceneChoice:
    """Read the prompt's words (first template / lighting / weather / palette word wins; every
    element word places its element); see the module docstring."""
    first: dict[str, str] = {}
    features: list[str] = []
    elements: list[str] = []
    chosen: list[tuple[str, str, str]] = []
    unhonoured: list[tuple[str, str]] = []
    for word in re.findall(r"[a-z]+", prompt.lower()):
        entry = VOCABULARY.get(word)
        if entry is None:
            if word not in STOPWORDS and len(word) > 2 and word not in (w for w, _ in unhonoured):
                unhonoured.append((word, "no offline meaning"))
            continue
        kind, name = entry
        if kind == "element":
            if name not in elements:
                elements.append(name)
                chosen.append((kind, name, word))
        elif kind not in first:
            first[kind] = name
            chosen.append((kind, name, word))
        elif kind == "template" and name in FEATURES and name != first["template"] and name not in features:
            features.append(name)
            chosen.append(("feature", name, word))
    template = TEMPLATES[first.get("template", "meadow")]
    lighting = LIGHTINGS[first.get("lighting", "day")]
    if template.kind == "outdoor":
        for name in features:
            template = dataclasses.replace(template, **FEATURES[name])
        if features:
            template = dataclasses.replace(template, name="+".join([template.name, *features]))
    else:
        unhonoured += [(w, f"adds {n} to outdoor worlds only") for what, n, w in chosen if what == "feature"]
        chosen = [c for c in chosen if c[0] != "feature"]
    weather = first.get("weather", "")
    if weather:
        w = WEATHERS[weather]
        lighting = _scaled(lighting, w.lighting)
        template = _scaled(template, w.template)
    placed = []
    for name in elements:
        element = ELEMENTS[name]
        fits = element.kind == "indoor" if template.kind == "indoor" else element.kind == "outdoor" and \
            template.kind == "outdoor"
        if fits:
            placed.append(name)
        else:
            words = [w for what, n, w in chosen if what == "element" and n == name]
            unhonoured += [(w, f"{name.replace('_', ' ')} is {element.kind}; the world is {template.kind}")
                           for w in words]
    chosen = [c for c in chosen if c[0] != "element" or c[1] in placed]
    palette = first.get("palette", "natural")
    template = dataclasses.replace(template, elements=tuple(placed), palette=palette)
    matched = tuple(w for _, _, w in chosen)
    return SceneChoice(template, lighting, matched, weather, palette, tuple(placed),
                       tuple(chosen), tuple(unhonoured))
