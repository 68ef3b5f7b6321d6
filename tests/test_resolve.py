"""``resolve_dataset``: the one place a dataset argument (folder, shipped name, config file)
becomes a typed dataset config; folders are told apart by the markers in the shipped configs."""

import pytest

from sckd.data.resolve import identify_folder, resolve_dataset
from sckd.errors import SckdError


def _folder(tmp_path, name, *paths):
    root = tmp_path / name
    for p in paths:
        target = root / p
        if p.endswith((".json", ".yaml")):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("{}\n")
        else:
            target.mkdir(parents=True)
    return root


@pytest.mark.parametrize("paths,name", [
    (["radar_5frames/training", "lidar/training"], "vod"),
    (["radar/training"], "vod"),
    (["dataset.json", "radar_6455"], "astyx"),
    (["synth_config.yaml", "radar_5frames/training", "lidar/training"], "synth"),  # file marker wins
    (["training/velodyne", "ImageSets"], "tj4d"),
])
def test_a_folder_is_named_by_its_markers(tmp_path, paths, name):
    root = _folder(tmp_path, "d", *paths)
    assert identify_folder(root) == name
    cfg = resolve_dataset(root)
    assert cfg.name == name and cfg.root == str(root.resolve())


def test_an_unknown_folder_is_one_line_listing_what_was_looked_for(tmp_path):
    root = _folder(tmp_path, "mine", "points")
    with pytest.raises(SckdError) as e:
        resolve_dataset(root)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{root}: not a dataset folder sckd knows")
    for marker in ("dataset.json", "synth_config.yaml", "radar_5frames/training", "training/velodyne"):
        assert marker in msg


def test_two_folder_markers_of_different_datasets_are_ambiguous(tmp_path):
    root = _folder(tmp_path, "both", "lidar/training", "training/velodyne")
    with pytest.raises(SckdError, match="looks like several datasets"):
        resolve_dataset(root)


def test_names_and_config_files(tmp_path):
    vod = resolve_dataset("vod", root=tmp_path)
    assert (vod.name, vod.root, vod.radar.tree) == ("vod", str(tmp_path), "radar_5frames")
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("base: datasets/vod.yaml\ndataset: {root: /data/vod, radar: {tree: radar}}\n")
    mine = resolve_dataset(cfg, overrides=["dataset.fov_filter=true"])
    assert (mine.root, mine.radar.tree, mine.fov_filter) == ("/data/vod", "radar", True)
    with pytest.raises(SckdError, match="nuscenes: not a dataset folder, a shipped dataset"):
        resolve_dataset("nuscenes")
    with pytest.raises(SckdError, match="dataset root does not exist"):
        resolve_dataset(str(tmp_path / "gone"))
    with pytest.raises(SckdError, match="unknown section 'model'"):
        resolve_dataset("vod", overrides=["model.x=1"])


def test_a_folder_under_a_models_config_keeps_that_config(tmp_path):
    base = resolve_dataset("synth")
    base.radar.features = ["x", "y", "z", "rcs", "v_r"]  # what the model was trained with
    vod_root = _folder(tmp_path, "vod", "radar_5frames/training")
    cfg = resolve_dataset(vod_root, base=base, overrides=["dataset.fov_filter=true"])
    assert cfg.name == "synth" and cfg.root == str(vod_root.resolve())
    assert cfg.radar.features == ["x", "y", "z", "rcs", "v_r"] and cfg.fov_filter
    assert base.root == "" and not base.fov_filter  # the model's config is not changed
    astyx_root = _folder(tmp_path, "astyx", "dataset.json")
    with pytest.raises(SckdError, match="holds the 'astyx' dataset .astyx layout. but the model's dataset 'synth'"):
        resolve_dataset(astyx_root, base=base)
    assert resolve_dataset(astyx_root, base=resolve_dataset("astyx")).root == str(astyx_root.resolve())
