"""The student in users' hands: PillarNetwork split, ONNX export, prediction on bare files.

A small synthetic world and a briefly trained CPU PointPillars student; ONNX Runtime must give
the PyTorch head maps to 1e-4 and the same final boxes.
"""

import json
import re

import numpy as np
import pytest
import torch
from helpers.tiny_student import train_on_tiny_world

from sckd.data.dataset import RadarDataset, collate
from sckd.data.labels import read_labels
from sckd.deploy.network import PillarNetwork
from sckd.errors import SckdError
from sckd.experiment.predict import load_trained_model

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

STUDENT = ["experiments/synth/pointpillars_radar", "--set", "train.epochs=2", "--set", "train.val_every=5",
           "--set", "train.batch_size=2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from sckd.cli import main

    root = tmp_path_factory.mktemp("deploy")
    world, ckpt = train_on_tiny_world(root, 12, *STUDENT)
    onnx = root / "student.onnx"
    assert main(["-q", "export", str(ckpt), "--out", str(onnx)]) == 0
    return world, ckpt, onnx, root


def _frames(world, ckpt):
    exp, _ = load_trained_model(ckpt, str(world))
    return exp, RadarDataset(exp.dataset, "val", with_lidar=False, labeled=False)


def test_pillar_network_is_the_detector_without_grouping_and_nms(trained):
    world, ckpt, _, _ = trained
    exp, model = load_trained_model(ckpt, str(world))
    net = PillarNetwork(model.eval(), exp.dataset.radar.features)
    _, ds = _frames(world, ckpt)
    with torch.no_grad():
        for i in range(len(ds)):
            batch = collate([ds.load(i)])
            ref = model.head_forward(model.encode(batch))
            maps = net(*net.prepare(batch.radar))
            assert torch.equal(maps[0], ref.cls_preds) and torch.equal(maps[1], ref.box_preds)
            assert torch.equal(maps[2], ref.dir_preds)


@pytest.mark.parametrize("optimization", ["basic", "all"])
def test_onnx_runtime_gives_the_pytorch_head_maps_to_1e_4(trained, optimization):
    from sckd.deploy.onnx_runtime import OnnxNetwork

    world, ckpt, onnx, _ = trained
    exp, model = load_trained_model(ckpt, str(world))
    net = PillarNetwork(model.eval(), exp.dataset.radar.features)
    ort = OnnxNetwork(onnx, threads=1, optimization=optimization)
    _, ds = _frames(world, ckpt)
    sizes = set()
    for i in range(len(ds)):
        inputs = net.prepare(collate([ds.load(i)]).radar)
        sizes.add(tuple(int(t.shape[0]) for t in inputs[::2]))
        with torch.no_grad():
            ref = net(*inputs)
        got = ort(*inputs)
        assert len(got) == len(ref) == 3
        for a, b in zip(got, ref):
            assert a.shape == b.shape
            # 1e-4 (of the map's scale where that is above 1: float32 spacing grows with it)
            assert float((a - b).abs().max()) <= 1e-4 * max(1.0, float(b.abs().max()))
    assert len(sizes) > 1  # the graph ran at several point and pillar counts (dynamic sizes)


def _read_kitti_folder(folder):
    return {p.stem: p.read_text() for p in sorted(folder.glob("*.txt"))}


def _threshold(trained, cli):
    """A score threshold for the briefly trained model (its scores stay near the 0.01 prior)
    that keeps some 20 val boxes and sits in a gap of the scores 100x wider than the runtimes'
    difference (1e-7 in score), so no box can cross it by rounding."""
    world, ckpt, _, root = trained
    out = root / "all_scores"
    if not out.is_dir():
        assert cli("-q", "predict", ckpt, world, "--out", out, "--set", "model.post.score_threshold=0.0") == 0
    scores = sorted((float(ln.split()[15]) for p in out.glob("*.txt") for ln in p.read_text().splitlines()),
                    reverse=True)
    k = next(i for i in range(20, len(scores) - 1) if scores[i] - scores[i + 1] > 1e-5)
    return (scores[k] + scores[k + 1]) / 2


def test_onnx_predict_writes_the_same_boxes_as_the_checkpoint(trained, cli, capsys):
    world, ckpt, onnx, root = trained
    low = ["--set", f"model.post.score_threshold={_threshold(trained, cli)}"]
    assert cli("predict", ckpt, world, "--out", root / "pt", *low) == 0
    assert cli("predict", onnx, world, "--out", root / "onnx", *low) == 0
    out = capsys.readouterr().out
    pt, ox = _read_kitti_folder(root / "pt"), _read_kitti_folder(root / "onnx")
    assert pt.keys() == ox.keys() and len(pt) == len(RadarDataset(load_trained_model(ckpt, str(world))[0].dataset,
                                                                  "val", labeled=False))
    n = 0
    for fid in pt:
        a = [ln.split() for ln in pt[fid].splitlines()]
        b = [ln.split() for ln in ox[fid].splitlines()]
        assert [r[0] for r in a] == [r[0] for r in b]
        if a:
            assert np.allclose(np.array([r[1:] for r in a], float), np.array([r[1:] for r in b], float), atol=2e-3)
        n += len(a)
    assert n > 0, "the check needs detections"
    assert re.search(r"^\d+: \d+ points, \d+ detections", out, re.M)


def test_bare_files_give_radar_frame_boxes_text_json_and_a_picture(trained, cli, capsys):
    world, ckpt, onnx, root = trained
    exp, ds = _frames(world, ckpt)
    fid = ds.frame_ids[0]
    frame = ds.load(0)
    bin_path = root / "bare" / f"{fid}.bin"
    bin_path.parent.mkdir()
    frame.radar.astype("<f4").tofile(bin_path)
    npy_path = root / "bare" / "as_npy.npy"
    np.save(npy_path, frame.radar.astype(np.float64))
    low = ["--set", f"model.post.score_threshold={_threshold(trained, cli)}"]
    for model in (ckpt, onnx):
        out = root / f"bare_{model.suffix[1:]}"
        assert cli("predict", model, bin_path, npy_path, "--out", out, "--plot", *low) == 0
        assert capsys.readouterr().out.count(" detections") == 3  # two frames and the total
        for stem in (fid, "as_npy"):
            assert (out / f"{stem}.png").stat().st_size > 10_000
        rows = [ln.split() for ln in (out / f"{fid}.txt").read_text().splitlines()]
        doc = json.loads((out / f"{fid}.json").read_text())
        assert [d["class"] for d in doc["detections"]] == [r[0] for r in rows]
        assert (out / "as_npy.txt").read_text() == (out / f"{fid}.txt").read_text()
        # The same frame read from the dataset has calibration: KITTI camera-frame boxes. Taken
        # back to the radar frame with the calibration they are the bare file's boxes.
        kitti = read_labels(root / f"{model.suffix[1:] if model.suffix == '.onnx' else 'pt'}" / f"{fid}.txt",
                            frozenset(exp.dataset.classes))
        radar = kitti.to_sensor(frame.calib)
        got = np.array([[float(v) for v in r[1:8]] for r in rows]).reshape(-1, 7)
        assert rows and got.shape == radar.shape
        assert np.allclose(got[:, :6], radar[:, :6], atol=2e-3)
        dh = (got[:, 6] - radar[:, 6] + np.pi) % (2 * np.pi) - np.pi
        assert np.abs(dh).max() < 2e-3
        assert [float(r[8]) for r in rows] == pytest.approx(kitti.score.tolist(), abs=1e-4)


@pytest.mark.parametrize("case", ["columns_npy", "bin_size", "suffix", "missing", "frames_without_root"])
def test_bad_inputs_are_one_line_errors(trained, cli, capsys, case):
    world, ckpt, _, root = trained
    bad = root / "bad"
    bad.mkdir(exist_ok=True)
    if case == "columns_npy":
        p = bad / "four.npy"
        np.save(p, np.zeros((5, 4), np.float32))
        args, want = [p], f"{p}: 4 columns, expected 7 columns: x y z rcs v_r v_r_comp time"
    elif case == "bin_size":
        p = bad / "odd.bin"
        np.zeros((5, 4), np.float32).tofile(p)
        args, want = [p], f"{p}: size 80 bytes is not a multiple of 28 (7 float32 features per point); expected 7 columns"
    elif case == "suffix":
        p = bad / "cloud.pcd"
        p.write_text("x")
        args, want = [p], f"{p}: not a dataset folder nor a .bin/.npy point file"
    elif case == "missing":
        p = bad / "nothere.bin"
        args, want = [p], f"{p}: input not found"
    else:
        args, want = [bad / "x.npy", "--frames", "00001"], "--frames needs a dataset folder"
        np.save(bad / "x.npy", np.zeros((1, 7), np.float32))
    assert cli("predict", ckpt, *args, "--out", root / "bad_out") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and want in err


def test_export_refuses_what_it_cannot_export_in_one_line(trained, monkeypatch):
    import importlib.util

    from sckd.deploy import onnx_export

    world, ckpt, _, root = trained
    exp, model = load_trained_model(ckpt, str(world))
    model.encoders["lidar"] = model.encoders["radar"]
    with pytest.raises(SckdError, match="only a radar-only student can be exported"):
        PillarNetwork(model, exp.dataset.radar.features)
    from sckd.experiment.config import load_experiment
    from sckd.experiment.train import build_model

    second = load_experiment("experiments/synth/second_radar", [])
    with pytest.raises(SckdError, match=r"VoxelEncoder \(SECOND\), not exported: its sparse convs read"):
        PillarNetwork(build_model(second), second.dataset.radar.features)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "onnx" else real(n, *a))
    with pytest.raises(SckdError, match=r"'onnx' is not installed; install the deploy extra"):
        onnx_export.export_onnx(ckpt, root / "never.onnx")
    assert not (root / "never.onnx").exists()


def test_int8_export_is_calibrated_on_train_frames_and_runs(trained, cli, capsys):
    """``--int8``: a QDQ model whose convolutions are int8, calibrated on the train split, that
    ``sckd predict`` runs as it is; its maps follow the float model's closely."""
    import onnx

    from sckd.deploy.onnx_runtime import OnnxNetwork

    world, ckpt, onnx_path, root = trained
    q = root / "student_int8.onnx"
    assert cli("export", ckpt, "--out", q, "--int8", "--data", world, "--calib-frames", "4") == 0
    model = onnx.load(str(q))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= ops.count("Conv") > 0
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["sckd.quantization"].startswith("int8") and "sckd.config" in meta
    # nothing is materialised that the float graph computes (the zero BEV canvas once was)
    biggest = max(len(t.raw_data) for t in onnx.load(str(onnx_path)).graph.initializer)
    assert max(len(t.raw_data) for t in model.graph.initializer) <= biggest
    exp, model_pt = load_trained_model(ckpt, str(world))
    net = PillarNetwork(model_pt.eval(), exp.dataset.radar.features)
    _, ds = _frames(world, ckpt)
    inputs = net.prepare(collate([ds.load(0)]).radar)
    ref, got = OnnxNetwork(onnx_path)(*inputs), OnnxNetwork(q)(*inputs)
    for a, b in zip(ref, got):
        r = np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1]
        assert r > 0.95, r
    capsys.readouterr()
    assert cli("predict", q, world, "--frames", ds.frame_ids[0], "--out", root / "int8_preds") == 0
    assert (root / "int8_preds" / f"{ds.frame_ids[0]}.txt").is_file()


def test_onnx_session_does_not_busy_wait_between_frames(trained):
    """Spinning intra-op threads would hold the cores while decoding and NMS run in Python
    (the whole-frame time in benchmarks/bench_deploy.py)."""
    from sckd.deploy.onnx_runtime import OnnxNetwork

    _, _, onnx, _ = trained
    opts = OnnxNetwork(onnx, threads=2).session.get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
