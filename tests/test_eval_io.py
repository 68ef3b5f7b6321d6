"""Metric entry points with files: prediction writer / reader, dataset split, in-memory
detections and the ``sckd eval`` command."""

import json

import numpy as np
import pytest
import torch
from helpers.vod_tree import dataset_config, make_vod_tree

from sckd.data.calib import read_calib
from sckd.data.types import Detections
from sckd.eval import EvalConfig, SplitEvaluator, evaluate_folder, write_predictions


@pytest.fixture
def tree(tmp_path):
    names = ["Car", "Pedestrian", "Cyclist", "bicycle", "Car"]
    return make_vod_tree(tmp_path / "vod", n_frames=6, splits={"train": [0], "val": [1, 2, 3, 4, 5]},
                         names=names, seed=3)


def _detections(tree, classes, jitter=0.03, seed=0):
    rng = np.random.default_rng(seed)
    ids = tree.splits["val"]
    dets = []
    for fid in ids:
        fr = tree.frames[fid]
        keep = [i for i, n in enumerate(fr.names) if n in classes]
        boxes = torch.tensor(fr.boxes[keep], dtype=torch.float32)
        boxes[:, :2] += torch.from_numpy(rng.normal(0, jitter, (len(keep), 2))).float()
        labels = torch.tensor([classes.index(fr.names[i]) for i in keep])
        dets.append(Detections(boxes, torch.from_numpy(rng.uniform(0.3, 1.0, len(keep))).float(), labels))
    return ids, dets


def test_in_memory_equals_written_files(tree, tmp_path):
    cfg = dataset_config(tree)
    ids, dets = _detections(tree, cfg.classes)
    ev = SplitEvaluator(cfg, "val")
    mem = ev.evaluate(ids, dets)
    assert mem.num_detections == 20 and not mem.missing_predictions
    assert mem.ap("entire_area", "Car") > 0  # 10 cars found -> a positive (tiny-set) AP
    calibs = [read_calib(tree.calib_dir / f"{f}.txt") for f in ids]
    write_predictions(tmp_path / "pred", ids, dets, calibs, cfg.classes, cfg.image_size)
    lines = (tmp_path / "pred" / f"{ids[0]}.txt").read_text().splitlines()
    assert len(lines) == 4 and all(len(ln.split()) == 16 for ln in lines)
    assert lines[0].split()[:3] == ["Car", "-1", "-1"]
    files = evaluate_folder(cfg, "val", tmp_path / "pred")
    a, b = mem.to_official_json(), files.to_official_json()
    for region in ("entire_area", "roi"):
        for key, v in a[region].items():
            assert b[region][key] == pytest.approx(v, abs=1e-6), key
    # flat metrics for training-time validation
    flat = ev(ids, dets)
    assert flat["entire_area/mAP_3d"] == pytest.approx(mem.mAP)


def test_missing_prediction_files_count_as_empty(tree, tmp_path):
    cfg = dataset_config(tree)
    ids, dets = _detections(tree, cfg.classes)
    calibs = [read_calib(tree.calib_dir / f"{f}.txt") for f in ids]
    write_predictions(tmp_path / "pred", ids, dets, calibs, cfg.classes, cfg.image_size)
    full = evaluate_folder(cfg, "val", tmp_path / "pred")
    (tmp_path / "pred" / f"{ids[0]}.txt").unlink()
    res = evaluate_folder(cfg, "val", tmp_path / "pred")
    assert res.missing_predictions == [ids[0]]
    # the frame's GT still counts: same GT total, fewer detections
    assert res.regions["entire_area"]["Car"].num_gt == full.regions["entire_area"]["Car"].num_gt
    assert res.num_detections == full.num_detections - 4
    # in memory: a split frame left out is also 'no detections'
    ev = SplitEvaluator(cfg, "val")
    assert ev.evaluate(ids[1:], dets[1:]).missing_predictions == [ids[0]]
    with pytest.raises(Exception, match="not in the evaluated split"):
        ev.evaluate(["99999"], dets[:1])


def test_cli_eval(tree, tmp_path, cli, capsys):
    cfg = dataset_config(tree)
    ids, dets = _detections(tree, cfg.classes)
    calibs = [read_calib(tree.calib_dir / f"{f}.txt") for f in ids]
    write_predictions(tmp_path / "pred", ids, dets, calibs, cfg.classes, cfg.image_size)
    (tmp_path / "pred" / f"{ids[-1]}.txt").unlink()
    out_json = tmp_path / "res" / "eval.json"
    rc = cli("eval", "--data", tree.root, "--split", "val", "--pred", tmp_path / "pred", "--json", out_json, "--r40")
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "Entire annotated area" in out.out and "Driving corridor" in out.out and "3D AP R40" in out.out
    assert "no prediction file" in out.out
    js = json.loads(out_json.read_text())
    expected = evaluate_folder(cfg, "val", tmp_path / "pred", EvalConfig()).to_official_json()
    assert js["entire_area"]["Car_3d_all"] == pytest.approx(expected["entire_area"]["Car_3d_all"])
    assert set(js["roi"]) >= {"Car_3d_all", "Car_bev_all", "Car_aos_all", "Pedestrian_3d_all", "Cyclist_aos_all"}
    assert js["meta"]["missing_prediction_frames"] == [ids[-1]]
    # a config name plus --root, and the exact IoU routine
    rc = cli("eval", "--data", "vod", "--root", tree.root, "--pred", tmp_path / "pred", "--iou-mode", "exact",
             "--range-difficulty", "30", "50")
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "Range <= 30 m" in out.out and "Range <= 50 m" in out.out
    # errors are one line naming the problem
    rc = cli("eval", "--data", tree.root, "--pred", tmp_path / "nope")
    err = capsys.readouterr().err
    assert rc == 2 and "prediction folder does not exist" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "pred" / f"{ids[0]}.txt").write_text("Car -1 -1 0.1 1 2 3\n")
    rc = cli("eval", "--data", tree.root, "--pred", tmp_path / "pred")
    err = capsys.readouterr().err
    assert rc == 2 and f"{ids[0]}.txt:1" in err


def test_sckd_eval_runs_without_importing_torch(tree, tmp_path):
    """The metric needs numpy and numba only: a whole ``sckd eval`` process never imports torch
    (1.1 s of a 1.7 s run before), the same result as in-process."""
    import subprocess
    import sys

    cfg = dataset_config(tree)
    ids, dets = _detections(tree, cfg.classes)
    write_predictions(tmp_path / "pred", ids, dets, [read_calib(tree.calib_dir / f"{f}.txt") for f in ids],
                      cfg.classes, cfg.image_size)
    code = ("import sys; from sckd.cli import main; "
            f"rc = main(['-q', 'eval', '--data', {str(tree.root)!r}, '--pred', {str(tmp_path / 'pred')!r}, "
            f"'--json', {str(tmp_path / 'eval.json')!r}]); "
            "print(rc, sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    last = out.strip().splitlines()[-1]
    assert last == "0 []", last
    js = json.loads((tmp_path / "eval.json").read_text())
    expected = evaluate_folder(cfg, "val", tmp_path / "pred", EvalConfig()).to_official_json()
    assert js["entire_area"]["Car_3d_all"] == pytest.approx(expected["entire_area"]["Car_3d_all"])
