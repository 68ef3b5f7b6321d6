"""Cross-dataset use: a model trained on one dataset reads another (`sckd predict` / `sckd eval`
on a foreign folder, `sckd reproduce cross --transfer`). The other set's points arrive in the
model's column layout by name; the model's classes and range stay; the other set's metric scores."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
from helpers.astyx_tree import simple_frames, write_astyx
from helpers.tiny_student import train_on_tiny_world

from sckd.data.dataset import RadarDataset
from sckd.data.labels import read_labels
from sckd.data.points import as_features
from sckd.data.resolve import dataset_for_model, resolve_dataset
from sckd.errors import SckdError

SHARED = ["--set", "model.encoders.radar.point_features=[x,y,z,v_r]",
          "--set", "model.encoders.radar.normalize.rcs=null", "--set", "model.encoders.radar.normalize.v_r_comp=null"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCKD_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def synth_student(tmp_path_factory):
    """A synthetic-world radar detector that reads x, y, z, v_r only, briefly trained."""
    return train_on_tiny_world(tmp_path_factory.mktemp("transfer"), 8, "experiments/synth/pointpillars_radar",
                               *SHARED, "--set", "train.epochs=1", "--set", "train.val_every=0",
                               "--set", "train.batch_size=2", "--set", "train.workers=0")


def test_as_features_picks_columns_by_name_and_zeros_the_rest():
    pts = np.arange(10, dtype=np.float32).reshape(2, 5)  # x y z v_r magnitude
    got = as_features(pts, ["x", "y", "z", "v_r", "magnitude"], ["x", "y", "z", "rcs", "v_r", "v_r_comp"])
    want = np.array([[0, 1, 2, 0, 3, 0], [5, 6, 7, 0, 8, 0]], dtype=np.float32)
    assert np.array_equal(got, want)


def test_another_dataset_keeps_the_models_classes_range_and_layout(tmp_path):
    astyx = write_astyx(tmp_path / "astyx", simple_frames(6))
    model = resolve_dataset("synth")
    cfg, tree = dataset_for_model(astyx, model, {"radar": ["x", "y", "z", "v_r"]})
    assert tree is not None and tree["eval"]["classes"] == ["Car"]
    assert cfg.name == "astyx" and cfg.layout == "astyx" and cfg.root == str(astyx.resolve())
    assert cfg.classes == model.classes and cfg.point_cloud_range == model.point_cloud_range
    assert cfg.radar.features == model.radar.features and cfg.radar.stored == ["x", "y", "z", "v_r", "magnitude"]
    assert "Truck" in cfg.other_classes and "Car" not in cfg.other_classes
    # The radar points of a frame: the stored v_r lands in the model's v_r column, rcs reads 0.
    own = RadarDataset(resolve_dataset(astyx), "all", with_lidar=False, labeled=False).load(0).radar
    read = RadarDataset(cfg, "all", with_lidar=False, labeled=False).load(0).radar
    cols = model.radar.features
    assert read.shape == (len(own), len(cols))
    assert np.array_equal(read[:, cols.index("v_r")], own[:, 3]) and not read[:, cols.index("rcs")].any()
    assert np.array_equal(read[:, :3], own[:, :3])
    # The model's own dataset stays the model's config (a folder with its markers).
    world = tmp_path / "w"
    world.mkdir()
    (world / "synth_config.yaml").write_text("{}\n")
    same, none = dataset_for_model(world, model, {"radar": ["x"]})
    assert none is None and same.radar.stored is None and same.root == str(world.resolve())


def test_a_feature_the_other_set_lacks_is_one_line(tmp_path):
    astyx = write_astyx(tmp_path / "astyx", simple_frames(3))
    with pytest.raises(SckdError) as e:
        dataset_for_model(astyx, resolve_dataset("synth"), {"radar": ["x", "y", "z", "rcs", "v_r"]})
    msg = str(e.value)
    assert "\n" not in msg and str(astyx) in msg and "['rcs']" in msg and "'astyx'" in msg
    with pytest.raises(SckdError, match="reads lidar points but dataset 'astyx'"):
        dataset_for_model(astyx, resolve_dataset("synth"), {"lidar": ["x"]},
                          overrides=["dataset.lidar=null"])


def test_normalize_null_drops_a_parent_entry():
    from sckd.experiment.config import load_experiment

    enc = load_experiment("experiments/synth/cross_gt").model.encoders["radar"]
    assert enc.point_features == ["x", "y", "z", "v_r"]
    assert {k for k, v in enc.normalize.items() if v is not None} == {"v_r"}
    with pytest.raises(SckdError, match="normalize.rcs"):
        load_experiment("experiments/synth/cross_gt", ["model.encoders.radar.normalize.rcs=[0.0, 1.0]"])


def test_predict_on_another_dataset_equals_the_model_on_its_layout_by_hand(synth_student, tmp_path, cli):
    """The transfer path (an Astyx folder given to a synthetic-world model) against the bare-file
    path with the model's columns built by hand from Astyx's own reading."""
    world, ckpt = synth_student
    astyx = write_astyx(tmp_path / "astyx", simple_frames(12))
    low = ["--set", "model.post.score_threshold=0.0"]
    assert cli("-q", "predict", ckpt, astyx, "--split", "all", "--out", tmp_path / "pred", *low) == 0
    own_cfg = resolve_dataset(astyx)
    own = RadarDataset(own_cfg, "all", with_lidar=False, labeled=False)
    model_cols = ["x", "y", "z", "rcs", "v_r", "v_r_comp", "time"]
    n = 0
    for i, fid in enumerate(own.frame_ids[:3]):
        frame = own.load(i)
        by_hand = np.zeros((len(frame.radar), len(model_cols)), dtype=np.float32)
        by_hand[:, [0, 1, 2, 4]] = frame.radar[:, [0, 1, 2, 3]]
        np.save(tmp_path / f"{fid}.npy", by_hand)
        assert cli("-q", "predict", ckpt, tmp_path / f"{fid}.npy", "--out", tmp_path / "bare", *low) == 0
        rows = [ln.split() for ln in (tmp_path / "bare" / f"{fid}.txt").read_text().splitlines()]
        bare = np.array([[float(v) for v in r[1:9]] for r in rows]).reshape(-1, 8)
        kitti = read_labels(tmp_path / "pred" / f"{fid}.txt", frozenset(["Car", "Pedestrian", "Cyclist"]))
        boxes = kitti.to_sensor(frame.calib)
        assert len(boxes) == len(bare)
        order_a, order_b = np.argsort(-bare[:, 7], kind="stable"), np.argsort(-kitti.score, kind="stable")
        assert np.allclose(bare[order_a, :6], boxes[order_b, :6], atol=2e-3)
        assert np.allclose(bare[order_a, 7], kitti.score[order_b], atol=1e-4)
        n += len(bare)
    assert n > 0
    # Scored with Astyx's own metric: Car only.
    assert cli("-q", "eval", "--pred", tmp_path / "pred", "--data", astyx, "--split", "all",
               "--json", tmp_path / "r.json") == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert "Car_3d_all" in doc["entire_area"] and "Pedestrian_3d_all" not in doc["entire_area"]


def test_reproduce_cross_scores_radar_models_on_the_other_set(tmp_path):
    """`--transfer`: every non-teacher job gets a transfer stage per seed, on the Astyx split of
    the same number; the table gains a block in the target's columns from the transfer results."""
    from sckd.eval.result import KINDS, ClassAP, EvalResult
    from sckd.workflows.pipeline import PipelineResult
    from sckd.workflows.reproduce import Reproduction

    astyx = write_astyx(tmp_path / "astyx", simple_frames(30))
    rep = Reproduction(tmp_path / "out", "cross", None, transfer=str(astyx))
    names = [s.name for s in rep.stages() if "transfer" in s.name]
    assert names == [f"fold{k}-transfer-{j}@astyx" for j in ("x_a", "x_i", "x_i_af") for k in range(3)]
    assert [t.overrides for t in rep.transfer[1]] == [[f"dataset.astyx.fold={k}"] for k in range(3)]
    exp = rep.fold_sets[0].experiment(rep.jobs.job("x_i_af"))
    assert exp.distill.teacher.config == "experiments/synth/teacher_af"
    assert exp.distill.teacher.checkpoint.endswith("fold0/checkpoints/teacher_af.pt")

    def car(ap):
        per = {"Car": ClassAP(dict.fromkeys(KINDS, ap), dict.fromkeys(KINDS, 0.0), 2)}
        return EvalResult(["Car"], {"entire_area": per, **{f"range_{a}-{b}": per for a, b in
                                                             ((0, 30), (30, 50), (50, 80))}}, 1, 1)

    for k, js in enumerate(rep.fold_sets):
        for n, key in enumerate(["x_a", "x_i", "x_i_af"]):
            path = js.result_file(f"{key}@astyx")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(car(10.0 * n + k).to_official_json()))
    md = rep.write(PipelineResult([], 1.0, 0.0, 0.0))[0].read_text()
    head, block = md.split("The same models scored on astyx")
    assert f"| (a) GT, x y z v_r | {statistics.mean([0, 1, 2]):.2f} ± 1.00 |" in block
    assert "| (i) SCKD from AF+RD, x y z v_r - (a) GT, x y z v_r | +10.00 ± 0.00 |" in block
    with pytest.raises(SckdError, match="--transfer"):
        Reproduction(tmp_path / "o2", "cross", None, transfer="synth")
