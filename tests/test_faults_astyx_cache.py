"""The Astyx cache checks what it wrote (issue 29): a cached file cut to a whole number of points,
emptied or deleted makes that frame convert again (it was used silently); a copied cache (new
times, same bytes) is kept; an error in a cached file says it is a cache and how to rebuild it."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers.astyx_tree import simple_frames, write_astyx

from sckd.data.dataset import RadarDataset
from sckd.data.layout import DatasetLayout
from sckd.data.resolve import resolve_dataset
from sckd.errors import SckdError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCKD_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def astyx(tmp_path):
    root = write_astyx(tmp_path / "astyx", simple_frames(4))
    cfg = resolve_dataset("astyx", root=root, overrides=["dataset.astyx.block_frames=1"])
    lay = DatasetLayout(cfg)
    return root, cfg, lay


def _source_points(root, i):
    return len(np.loadtxt(root / "radar_6455" / f"{i:06d}.txt", skiprows=2))


def test_damaged_cache_files_are_converted_again(astyx):
    root, cfg, lay = astyx
    n = [_source_points(root, i) for i in range(4)]
    assert [len(RadarDataset(cfg, "all").load(i).radar) for i in range(4)] == n  # independent count
    row = 4 * len(cfg.radar.file_features)
    cut = lay.radar_dir / "000001.bin"
    cut.write_bytes(cut.read_bytes()[: row * (n[1] - 5)])  # whole points: no reader would notice
    (lay.label_dir / "000002.txt").write_text("")  # an emptied label file: the frame's boxes gone
    (lay.lidar_dir / "000003.bin").unlink()
    untouched = {p.name: p.stat().st_mtime_ns for p in lay.radar_dir.glob("*.bin") if p.name == "000000.bin"}
    ds = RadarDataset(cfg, "all")  # prepares the cache again
    assert [len(ds.load(i).radar) for i in range(4)] == n
    assert len(ds.load(2).names) == 3 and (lay.lidar_dir / "000003.bin").is_file()
    assert {p: (lay.radar_dir / p).stat().st_mtime_ns for p in untouched} == untouched  # only damaged frames


def test_a_copied_cache_with_new_times_is_kept(astyx):
    root, cfg, lay = astyx
    files = sorted(p for p in (lay.radar_root.parent).rglob("*") if p.is_file() and p.suffix in (".bin", ".txt")
                   and "ImageSets" not in p.parts)
    for p in files:
        os.utime(p, ns=(10**18, 10**18))  # as `cp -r` leaves them: same bytes, new times
    content = {p: p.read_bytes() for p in files}
    DatasetLayout(cfg)
    assert all(p.stat().st_mtime_ns == 10**18 for p in files)  # nothing converted again
    assert {p: p.read_bytes() for p in files} == content
    manifest = json.loads((lay.radar_root.parent / "manifest.json").read_text())
    assert {r[2] for e in manifest["frames"].values() for r in e["cache"]} == {10**18}  # times refreshed


def test_an_error_in_a_cached_file_says_it_is_a_cache(astyx):
    root, cfg, lay = astyx
    ds = RadarDataset(cfg, "all")
    bad = lay.radar_dir / "000001.bin"
    bad.write_bytes(bad.read_bytes()[:37])  # cut while a run reads the cache
    with pytest.raises(SckdError) as e:
        ds.load(1)
    msg = str(e.value)
    assert msg.startswith(f"{bad}: size 37 bytes") and "\n" not in msg
    assert msg.endswith(f"the file is part of sckd's converted Astyx cache {lay.radar_root.parent}: rerun to "
                        "convert frames whose cache changed again, or delete that folder to convert everything again")
    assert len(RadarDataset(cfg, "all").load(1).radar) == _source_points(root, 1)  # and a rerun rebuilds it
