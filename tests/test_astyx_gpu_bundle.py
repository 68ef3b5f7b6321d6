"""benchmarks/astyx_gpu: the Astyx bundle carried to a GPU machine rebuilds a folder whose sckd
cache equals the original's (LiDAR exact where the files hold 2 decimals, else and radar within
float32; labels and calib files byte for byte), and the float16 weights read back."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.astyx_tree import simple_frames, write_astyx

from sckd.data.layout import DatasetLayout
from sckd.data.resolve import resolve_dataset
from sckd.engine.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

TOOLS = Path(__file__).resolve().parents[1] / "benchmarks" / "astyx_gpu"


def _cache(root, cache_dir):
    cfg = resolve_dataset("astyx", root=root, overrides=["dataset.astyx.block_frames=4",
                                                          f"dataset.astyx.cache_dir={cache_dir}"])
    return DatasetLayout(cfg)


def _two_decimals(root: Path) -> None:
    """Rewrite the LiDAR files as the real ones are written: x y z with 2 decimals."""
    for p in (root / "lidar_vlp16").glob("*.txt"):
        lines = p.read_text().splitlines()
        rows = [ln.split() for ln in lines[1:]]
        p.write_text("\n".join([lines[0]] + [" ".join([f"{float(r[0]):.2f}", f"{float(r[1]):.2f}",
                                                       f"{float(r[2]):.2f}", *r[3:]]) for r in rows]) + "\n")


@pytest.mark.parametrize("lidar_2dp", [True, False])
def test_bundle_rebuilds_the_same_cache(tmp_path, lidar_2dp):
    root = write_astyx(tmp_path / "astyx", simple_frames(8))
    if lidar_2dp:
        _two_decimals(root)
    for cmd in ([TOOLS / "pack.py", root, tmp_path / "bundle"],
                [TOOLS / "unpack.py", tmp_path / "bundle", tmp_path / "back", 2]):
        subprocess.run([sys.executable, *map(str, cmd)], check=True, capture_output=True)
    a, b = _cache(root, tmp_path / "c1"), _cache(tmp_path / "back", tmp_path / "c2")
    for tree, atol in ((a.radar_root, 1e-5), (a.lidar_root, 0.0 if lidar_2dp else 1e-5)):
        other = b.radar_root if tree == a.radar_root else b.lidar_root
        files = sorted((tree / "training" / "velodyne").iterdir())
        assert len(files) == 8
        for f in files:
            x, y = np.fromfile(f, np.float32), np.fromfile(other / "training" / "velodyne" / f.name, np.float32)
            assert x.shape == y.shape and np.abs(x - y).max() <= atol, f.name
    for sub in ("label_2", "calib"):
        for f in sorted((a.radar_root / "training" / sub).iterdir()):
            assert filecmp.cmp(f, b.radar_root / "training" / sub / f.name, shallow=False), f.name


def test_half_weights_read_back(tmp_path):
    w = {"a.weight": torch.randn(4, 3), "a.bias": torch.randn(4), "n.num_batches_tracked": torch.tensor(7)}
    save_checkpoint(Checkpoint(model=w, config={"model": {"name": "x"}}, epoch=3,
                               optimizer={"state": {}, "param_groups": []}), tmp_path / "full.pt")
    for cmd in ([TOOLS / "half.py", tmp_path / "full.pt", tmp_path / "h.pt"],
                [TOOLS / "unhalf.py", tmp_path / "h.pt", tmp_path / "back.pt"]):
        subprocess.run([sys.executable, *map(str, cmd)], check=True, capture_output=True)
    half = torch.load(tmp_path / "h.pt", weights_only=True)
    assert half["model"]["a.weight"].dtype == torch.float16 and "optimizer" not in half
    back = load_checkpoint(tmp_path / "back.pt")
    assert back.epoch == 3 and back.model["a.weight"].dtype == torch.float32
    assert back.model["n.num_batches_tracked"].item() == 7
    torch.testing.assert_close(back.model["a.weight"], w["a.weight"].half().float())
