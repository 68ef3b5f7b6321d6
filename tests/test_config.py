"""Config loader: inheritance, --set overrides, typed validation with errors naming the key."""

import dataclasses

import pytest

from sckd.config import apply_overrides, from_dict, load_yaml_tree
from sckd.data.config import DatasetConfig
from sckd.data.resolve import resolve_dataset
from sckd.errors import SckdError


def test_shipped_dataset_configs_load():
    vod = resolve_dataset("vod")
    assert vod.layout == "vod" and vod.radar.tree == "radar_5frames"
    assert vod.radar.features == ["x", "y", "z", "rcs", "v_r", "v_r_comp", "time"]
    assert vod.lidar is not None and vod.lidar.features == ["x", "y", "z", "reflectance"]
    assert vod.classes == ["Car", "Pedestrian", "Cyclist"] and "truck" in vod.other_classes
    tj = resolve_dataset("tj4d")
    assert tj.layout == "kitti" and tj.lidar is None and len(tj.radar.features) == 8
    synth = resolve_dataset("synth")
    assert synth.name == "synth" and synth.radar.features == vod.radar.features  # inherited
    assert {"train", "val", "unlabeled"} <= set(synth.splits)  # dicts merge key by key


def test_inheritance_merges_dicts_and_replaces_lists(tmp_path):
    (tmp_path / "parent.yaml").write_text(
        "dataset:\n  name: parent\n  radar: {tree: radar, features: [x, y, z, a]}\n  classes: [Car, Truck]\n")
    (tmp_path / "child.yaml").write_text(
        "base: parent.yaml\ndataset:\n  name: child\n  radar: {tree: radar_3frames}\n  classes: [Car]\n")
    raw = load_yaml_tree(tmp_path / "child.yaml")
    assert raw["dataset"]["radar"] == {"tree": "radar_3frames", "features": ["x", "y", "z", "a"]}
    assert raw["dataset"]["classes"] == ["Car"]
    cfg = resolve_dataset(tmp_path / "child.yaml")
    assert (cfg.name, cfg.radar.tree, cfg.radar.features) == ("child", "radar_3frames", ["x", "y", "z", "a"])
    # a base named like a shipped config resolves to configs/datasets/
    (tmp_path / "mine.yaml").write_text("base: datasets/vod.yaml\ndataset: {name: mine}\n")
    mine = resolve_dataset(tmp_path / "mine.yaml")
    assert mine.name == "mine" and mine.radar.tree == "radar_5frames"


def test_inheritance_cycle(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(SckdError, match="cycle"):
        load_yaml_tree(tmp_path / "a.yaml")


def test_set_overrides():
    cfg = resolve_dataset("vod", root="/data/vod", overrides=[
        "dataset.radar.tree=radar", "dataset.fov_filter=true", "dataset.point_cloud_range=[0, -10, -3, 20, 10, 2]"])
    assert cfg.radar.tree == "radar" and cfg.fov_filter is True
    assert cfg.point_cloud_range == [0.0, -10.0, -3.0, 20.0, 10.0, 2.0]
    assert cfg.root == "/data/vod"
    assert cfg.radar.features[0] == "x"  # sibling keys untouched


@pytest.mark.parametrize("override,key", [
    ("dataset.radar.bogus=1", "dataset.radar.bogus"),
    ("dataset.colour=red", "dataset.colour"),
])
def test_unknown_key_names_the_key(override, key):
    with pytest.raises(SckdError) as e:
        resolve_dataset("vod", overrides=[override])
    assert f"'{key}'" in str(e.value) and "unknown key" in str(e.value)


@pytest.mark.parametrize("override,key,msg", [
    ("dataset.fov_filter=3", "dataset.fov_filter", "true/false"),
    ("dataset.classes=Car", "dataset.classes", "expected a list"),
    ("dataset.image_size=[1936, big]", "dataset.image_size[1]", "integer"),
    ("dataset.layout=nuscenes", "dataset.layout", "not one of"),
    ("dataset.point_cloud_range=[0, 1, 2]", "dataset.point_cloud_range", "6 numbers"),
    ("dataset.point_cloud_range=[5, -1, -1, 0, 1, 1]", "dataset.point_cloud_range", "min must be below"),
    ("dataset.radar.features=[a, b, c]", "dataset.radar.features", "x, y, z"),
    ("dataset.other_classes=[Car]", "dataset.other_classes", "also in classes"),
])
def test_wrong_types_name_the_key(override, key, msg):
    with pytest.raises(SckdError) as e:
        resolve_dataset("vod", overrides=[override])
    assert f"'{key}'" in str(e.value) and msg in str(e.value)


@pytest.mark.parametrize("override,msg", [
    ("dataset.name.x=1", "'dataset.name' is a value"),
    ("dataset.radar", "expected KEY=VALUE"),
    ("dataset..tree=x", "empty key segment"),
])
def test_bad_set_paths(override, msg):
    with pytest.raises(SckdError) as e:
        apply_overrides(load_yaml_tree("vod"), [override])
    assert msg in str(e.value) and override.split("=")[0] in str(e.value)


def test_missing_config_and_section(tmp_path):
    with pytest.raises(SckdError, match="config file not found"):
        resolve_dataset(tmp_path / "nope.yaml")
    (tmp_path / "x.yaml").write_text("model: {a: 1}\n")
    with pytest.raises(SckdError, match="no 'dataset' section"):
        resolve_dataset(tmp_path / "x.yaml")
    (tmp_path / "bad.yaml").write_text("dataset: [unclosed\n")
    with pytest.raises(SckdError, match="invalid YAML"):
        resolve_dataset(tmp_path / "bad.yaml")


def test_required_field():
    with pytest.raises(SckdError, match="'dataset.name': missing"):
        from_dict(DatasetConfig, {}, "dataset")


def test_numbers_written_without_a_dot_are_numbers():
    # YAML 1.1 (safe_load) reads 3e-5 as a string; a float field takes it as the number
    @dataclasses.dataclass
    class C:
        w: float = 0.0
        opt: float | None = None
    got = from_dict(C, {"w": "3e-5", "opt": "-2E3"}, "x")
    assert got.w == 3e-5 and got.opt == -2000.0


def test_a_wrong_value_in_an_optional_field_is_a_one_line_error():
    @dataclasses.dataclass
    class C:
        opt: float | None = None
    with pytest.raises(SckdError, match=r"config key 'x.opt': expected a number, got 'big'"):
        from_dict(C, {"opt": "big"}, "x")
