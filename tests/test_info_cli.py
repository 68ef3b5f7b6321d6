"""``sckd info``: statistics (hand-countable on the test tree), plots, bad input as one-line errors."""

import logging

import numpy as np
import pytest
from helpers.vod_tree import dataset_config, make_vod_tree

from sckd.cli import main
from sckd.data.stats import dataset_stats
from sckd.errors import warnings


@pytest.fixture
def tree(tmp_path):
    return make_vod_tree(tmp_path / "vod", n_frames=4)


def test_stats_api_hand_counted(tree):
    # Each frame: 4 boxes (Car, Pedestrian, Cyclist, bicycle) with 5 radar points inside each,
    # plus 30 background points at y in [-20, -10] outside every box: 50 points per frame,
    # 20/50 = 40 % inside any box, 15/50 = 30 % inside Car/Pedestrian/Cyclist boxes. The boxes
    # sit at x = 6, 13, 20, 27 m and |y| <= 4 m: the first three are within 25 m.
    s = dataset_stats(dataset_config(tree), "train", progress=False)
    assert s.split_sizes == {"train": 3, "val": 1, "test": None}
    assert s.frames == 3 and s.labeled
    assert (s.radar_points.mean, s.radar_points.median, s.radar_points.min, s.radar_points.max) == (50, 50, 50, 50)
    assert s.lidar_points is not None and s.lidar_points.mean == 200
    assert s.boxes_per_class == {"Car": 3, "Cyclist": 3, "Pedestrian": 3, "bicycle": 3}
    assert s.share_in_any_box == pytest.approx(0.4)
    assert s.share_in_eval_boxes == pytest.approx(0.3)
    assert s.objects_near == {"Car": 3, "Pedestrian": 3, "Cyclist": 3}
    assert s.median_points_near == {"Car": 5.0, "Pedestrian": 5.0, "Cyclist": 5.0}
    s2 = dataset_stats(dataset_config(tree), "train", max_frames=2, progress=False)
    assert s2.frames == 2 and sum(s2.boxes_per_class.values()) == 8


def test_stats_without_labels(tree):
    for p in tree.label_dir.glob("00003.txt"):
        p.unlink()
    s = dataset_stats(dataset_config(tree), "val", progress=False)
    assert not s.labeled and s.boxes_per_class == {} and s.radar_points.mean == 50


def test_info_prints_table(tree, capsys):
    rc = main(["info", str(tree.root), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "split 'train': 3 frames analysed" in out
    assert "40.00 %" in out and "30.00 %" in out
    assert "bicycle" in out and "lidar (raw)" in out
    rc = main(["info", str(tree.root), "--split", "val", "--no-progress", "--set", "dataset.lidar=null"])
    out = capsys.readouterr().out
    assert rc == 0 and "1 frames analysed" in out and "lidar" not in out


def test_info_tj4d(tmp_path, capsys):
    names = ["Car", "Truck", "Other"]
    root = make_vod_tree(tmp_path / "tj", n_frames=2, layout="kitti", radar_features=8, label_fields=15,
                         names=names).root
    assert main(["info", str(root), "--dataset", "tj4d", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Truck" in out and "Other" in out and "1 frames analysed" in out


def test_info_plot(tree, tmp_path, capsys):
    out = tmp_path / "bev.png"
    assert main(["info", str(tree.root), "--plot", "00002", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def _error_line(capsys, rc):
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def _bad_bin(tree):
    p = tree.radar_dir / "00001.bin"
    p.write_bytes(p.read_bytes() + b"\0\0\0\0")
    return "00001.bin: size 1404 bytes is not a multiple of 28"


def _no_calib(tree):
    (tree.calib_dir / "00000.txt").unlink()
    return "00000.txt: calibration file is missing"


def _calib_key(tree):
    p = tree.calib_dir / "00002.txt"
    p.write_text(p.read_text().replace("P2:", "Q2:"))
    return "00002.txt: calib key P2 is missing"


def _calib_text(tree):
    p = tree.calib_dir / "00002.txt"
    p.write_text(p.read_text().replace("R0_rect: 1.0", "R0_rect: one"))
    return "00002.txt:5: non-numeric value in calib key R0_rect"


def _label_fields(tree):
    p = tree.label_dir / "00001.txt"
    p.write_text(p.read_text() + "Car 0 0 0\n")
    return "00001.txt:5: label line has 4 fields"


def _negative(tree):
    p = tree.label_dir / "00001.txt"
    parts = p.read_text().splitlines()[0].split()
    parts[9] = "-" + parts[9]
    p.write_text(" ".join(parts) + "\n")
    return "00001.txt:1: negative box size"


def _missing_frame(tree):
    (tree.radar_dir / "00002.bin").unlink()
    return "train.txt: frame 00002 is listed but"


def _empty_split(tree):
    (tree.imagesets_dir / "train.txt").write_text("")
    return "train.txt: split 'train' is empty"


def _lidar_bin(tree):
    p = tree.lidar_dir / "00000.bin"
    p.write_bytes(p.read_bytes()[:-8])
    return "00000.bin: size 3192 bytes is not a multiple of 16"


@pytest.mark.parametrize("breaker", [_bad_bin, _no_calib, _calib_key, _calib_text, _label_fields, _negative,
                                     _missing_frame, _empty_split])
def test_bad_input_is_one_line_error(tree, capsys, breaker):
    msg = breaker(tree)
    line = _error_line(capsys, main(["info", str(tree.root), "--no-progress"]))
    assert msg in line


def test_bad_lidar_bin_in_plot(tree, capsys):
    msg = _lidar_bin(tree)
    line = _error_line(capsys, main(["info", str(tree.root), "--plot", "00000", "--out", "/tmp/x.png"]))
    assert msg in line


@pytest.mark.parametrize("args,msg", [
    (["--set", "dataset.radar.colour=red"], "'dataset.radar.colour': unknown key"),
    (["--set", "dataset.fov_filter=maybe"], "'dataset.fov_filter': expected true/false"),
    (["--set", "dataset.name.sub=1"], "'dataset.name' is a value"),
    (["--dataset", "nuscenes"], "nuscenes: not a dataset folder, a shipped dataset (astyx, synth, tj4d, vod)"),
    (["--split", "unlabeled"], "no split named 'unlabeled'"),
    (["--plot", "00009", "--out", "x.png"], "frame 00009 is listed but"),
    (["--plot", "00000"], "--plot: needs --out"),
    (["--max-frames", "0"], "--max-frames 0"),
])
def test_bad_arguments(tree, capsys, args, msg):
    line = _error_line(capsys, main(["info", str(tree.root), "--no-progress", *args]))
    assert msg in line


def test_missing_root(tmp_path, capsys):
    line = _error_line(capsys, main(["info", str(tmp_path / "nothing")]))
    assert "nothing: dataset root does not exist" in line


def test_counted_warnings_do_not_fail(tree, capsys, caplog):
    pts = tree.frames["00000"].radar.copy()
    pts[3, 5] = np.nan
    pts.tofile(tree.radar_dir / "00000.bin")
    (tree.radar_dir / "00001.bin").write_bytes(b"")
    p = tree.label_dir / "00002.txt"
    p.write_text(p.read_text().replace("bicycle", "hoverboard"))
    before = dict(warnings.counts)
    with caplog.at_level(logging.WARNING, logger="sckd"):
        rc = main(["info", str(tree.root), "--no-progress"])
    assert rc == 0
    new = {k: n - before.get(k, 0) for k, n in warnings.counts.items() if n != before.get(k, 0)}
    assert new == {"radar point cloud rows with NaN/inf dropped": 1, "empty radar point cloud kept as 0 points": 1,
                   "label of an unknown class kept as 'other'": 1}
    text = caplog.text  # the end-of-run summary names every kind
    assert "NaN/inf dropped" in text and "empty radar point cloud" in text and "unknown class" in text
    out = capsys.readouterr().out
    assert "hoverboard" in out and "frames without radar points: 1" in out


def test_real_process_exit_code_and_stderr(tree):
    import subprocess
    import sys

    _bad_bin(tree)
    r = subprocess.run([sys.executable, "-m", "sckd", "info", str(tree.root), "--no-progress"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: ") and "00001.bin: size 1404" in r.stderr
