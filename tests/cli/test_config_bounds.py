"""Issue 20 item 4: every numeric / named-choice setting `generate --list-settings` shows has a
declared bound (pipeline/config_bounds.py) or says why it has none, and an out-of-range value
for each is refused before anything exists, naming the exact key the user typed."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing

import pytest

from scenedreamer.cli import generate
from scenedreamer.config_io import CONFIG_BOUNDS, Bound, check_config, from_json_dict, to_json_dict
from scenedreamer.errors import UserInputError
from scenedreamer.pipeline.config import GenerateConfig, preset_config


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(add_help=False)
    generate.add_parser(top.add_subparsers())
    return top


def _numeric(tp) -> bool:
    """Whether a field's type holds numbers (int / float, a tuple of them, optional or not)."""
    if tp is bool:
        return False
    if tp in (int, float):
        return True
    return any(_numeric(a) for a in typing.get_args(tp) if a is not Ellipsis and a is not type(None))


def _leaves(config, prefix=""):
    """(dotted key, config class, field name, current value, field type) of every leaf setting."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", type(config), f.name, value, hints[f.name]


def _outside(bound: Bound, current, tp):
    """A value just outside ``bound``, shaped like the field (a list for a tuple field)."""
    if bound.choices:
        bad = "no-such-choice"
    elif bound.low is not None:
        bad = bound.low if bound.low_open else bound.low - 1
    else:
        bad = bound.high if bound.high_open else bound.high + 1
    wants_int = int in (tp, *typing.get_args(tp)) and float not in (tp, *typing.get_args(tp))
    bad = int(bad) if wants_int and not isinstance(bad, str) else (float(bad) if not isinstance(bad, str) else bad)
    if isinstance(current, (tuple, list)) or (current is None and tuple in {typing.get_origin(a) for a in typing.get_args(tp)}):
        return [bad] * max(1, len(current or ()) or 3)
    return bad


# the fields validated elsewhere than the table, with where (every one has a test of its own)
CHECKED_ELSEWHERE = {
    "seed": "GenerateConfig.__post_init__ (tests/cli/test_run_safety.py)",
    "width": "GenerateConfig.__post_init__ (tests/cli/test_run_safety.py)",
    "height": "GenerateConfig.__post_init__",
}

CONFIGS = {"offline-gaussians": lambda: preset_config("offline"),
           "offline-nerf": lambda: preset_config("offline", "nerf")}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_numeric_setting_has_a_bound_or_says_why_not(name):
    missing = []
    for key, cls, field, value, tp in _leaves(CONFIGS[name]()):
        if not _numeric(tp) or key in CHECKED_ELSEWHERE:
            continue
        bound = CONFIG_BOUNDS.get(cls, {}).get(field)
        if bound is None:
            missing.append(key)
        elif not bound.unbounded:
            assert bound.problem(value) is None, f"{key}: the preset's own value {value!r} is out of its bound"
    assert not missing, f"numeric settings without a bound in pipeline/config_bounds.py: {missing}"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_an_out_of_range_value_of_every_bounded_key_is_refused_naming_it(name):
    config = CONFIGS[name]()
    representation = "nerf" if name.endswith("nerf") else "gaussians"
    parser = _parser()
    checked = 0
    for key, cls, field, value, tp in _leaves(config):
        bound = CONFIG_BOUNDS.get(cls, {}).get(field)
        if bound is None or bound.unbounded:
            continue
        bad = _outside(bound, value, tp)
        # 1. --set, as `generate` and every batch line build it
        args = parser.parse_args(["generate", "a forest", "--representation", representation,
                                  "--set", f"{key}={json.dumps(bad)}"])
        with pytest.raises(UserInputError) as err:
            generate.build_config(args)
        assert key in str(err.value) and "\n" not in str(err.value), (key, bad, str(err.value))
        # 2. a saved config.json holding the value (what --config and --resume read)
        data = to_json_dict(config)
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = bad
        with pytest.raises(UserInputError) as err:
            from_json_dict(GenerateConfig, data, where="config")
        assert f"config.{key}" in str(err.value), (key, bad, str(err.value))
        checked += 1
    # every representation-independent setting plus the representation's own (about 200)
    assert checked > 150, checked


def test_unbounded_settings_say_why():
    for cls, bounds in CONFIG_BOUNDS.items():
        for field, bound in bounds.items():
            assert bound.choices or bound.low is not None or bound.high is not None or len(bound.unbounded) > 20, \
                f"{cls.__name__}.{field}: a bound that refuses nothing must say why"


def test_check_config_names_the_dotted_key_and_accepts_the_presets():
    for name in ("offline", "sd15", "sd2"):
        check_config(preset_config(name))       # every preset's own values are in range
    with pytest.raises(UserInputError, match=r"^init\.fit_steps: -5 is out of range; expected >= 0$"):
        dataclasses.replace(GenerateConfig(), init=dataclasses.replace(GenerateConfig().init, fit_steps=-5))
    with pytest.raises(UserInputError, match=r"^progressive\.neighbours: -3 is out of range"):
        dataclasses.replace(GenerateConfig(), progressive=dataclasses.replace(GenerateConfig().progressive, neighbours=-3))


def test_a_bound_describes_its_range():
    assert Bound(low=0.0, high=1.0, low_open=True).describe() == "in (0, 1]"
    assert Bound(low=1).problem(0) == "0 is out of range; expected >= 1"
    assert Bound(low=1).problem(1) is None and Bound(low=1).problem(None) is None
    assert Bound(low=0.0, high=1.0).problem((0.5, 2.0)) == "value [1] 2.0 is out of range; expected in [0, 1]"
    assert Bound(choices=("a", "b")).problem("c") == "\"c\" is not one of 'a', 'b'"
