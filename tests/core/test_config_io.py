import dataclasses
import enum

import pytest

from scenedreamer.config_io import config_diff, from_json_dict, load_config, save_config, to_json_dict
from scenedreamer.errors import UserInputError


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass(frozen=True)
class NerfCfg:
    planes: int = 32
    """plane resolution"""


@dataclasses.dataclass(frozen=True)
class SplatCfg:
    sh_degree: int = 1
    """SH degree"""


@dataclasses.dataclass(frozen=True)
class Top:
    name: str = "x"
    scale: float = 1.0
    size: tuple[int, int] = (64, 48)
    colour: Colour = Colour.RED
    rep: NerfCfg | SplatCfg = dataclasses.field(default_factory=NerfCfg)
    seed: int | None = None
    tags: list[str] = dataclasses.field(default_factory=list)


def test_round_trip_with_union_enum_tuple(tmp_path):
    cfg = Top(name="y", scale=2, size=(8, 4), colour=Colour.BLUE, rep=SplatCfg(3), seed=7, tags=["a"])
    save_config(tmp_path / "c.json", cfg)
    back = load_config(Top, tmp_path / "c.json")
    assert back == cfg
    assert isinstance(back.rep, SplatCfg) and back.size == (8, 4) and back.scale == 2.0


def test_bad_values_name_the_field():
    data = to_json_dict(Top())
    data["rep"]["planes"] = "many"
    with pytest.raises(UserInputError, match=r"config\.rep\.planes"):
        from_json_dict(Top, data)
    data = to_json_dict(Top())
    data["bogus"] = 1
    with pytest.raises(UserInputError, match="bogus"):
        from_json_dict(Top, data)
    data = to_json_dict(Top())
    data["colour"] = "green"
    with pytest.raises(UserInputError, match="colour"):
        from_json_dict(Top, data)


def test_load_config_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserInputError, match="bad.json"):
        load_config(Top, tmp_path / "bad.json")
    with pytest.raises(UserInputError, match="no such"):
        load_config(Top, tmp_path / "missing.json")


def test_config_diff_names_paths():
    diff = config_diff(Top(), Top(rep=NerfCfg(planes=64), seed=3))
    assert any(d.startswith("rep.planes") for d in diff)
    assert any(d.startswith("seed") for d in diff)
    assert config_diff(Top(), Top()) == []
