"""Every model family the CLI trains is predicted, evaluated and (where it can be) exported.

One tiny synthetic world; each shipped synthetic experiment's model kind (radar PointPillars,
radar SECOND, LiDAR-only SECOND, LiDAR + radar teacher, SCKD student) is trained for one epoch
by the demo's own job machinery (:class:`JobSet` train and evaluate stages, the library route
whose numbers the demo report prints). ``sckd predict`` + ``sckd eval`` on each checkpoint must
write the same files and the same metric. Post-processing keeps the top 20 boxes of each frame
at any score (stored in the checkpoints), so that the barely trained models have boxes to compare.
"""

import json
import math
import re
import shutil

import numpy as np
import pytest

from sckd.data.dataset import RadarDataset, collate
from sckd.deploy.predict import radar_frame_lines
from sckd.experiment.predict import load_trained_model

# key -> (shipped experiment, exportable to ONNX)
KINDS = {
    "pointpillars_radar": ("experiments/synth/pointpillars_radar", True),
    "second_radar": ("experiments/synth/second_radar", False),
    "second_lidar": ("experiments/synth/second_lidar", False),
    "teacher": ("experiments/synth/teacher", False),
    "student": ("experiments/synth/sckd_student", True),
}
TINY = ["train.epochs=1", "train.val_every=0", "train.batch_size=4", "train.workers=0",
        "model.post.score_threshold=0.0", "model.post.pre_nms_max=64", "model.post.max_detections=20"]
# a sparse LiDAR (16 beams, 1 degree steps: ~2k points, not ~28k) keeps the LiDAR models fast
WORLD = ["synth.sequence.frames_per_sequence=4", "synth.lidar.beams=16", "synth.lidar.azimuth_step_deg=1.0"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """(world, JobSet) with every kind trained and scored the way ``sckd demo`` does it."""
    from sckd.data.synth.config import load_synth_config
    from sckd.data.synth.world import synthesize
    from sckd.workflows.jobs import DataSource, JobSet, ModelJob

    root = tmp_path_factory.mktemp("zoo")
    world = root / "world"
    synthesize(world, 12, 0, load_synth_config(None, WORLD), workers=1)
    jobs = [ModelJob(k, k, cfg, teacher="teacher" if k == "student" else None) for k, (cfg, _) in KINDS.items()]
    jobs.sort(key=lambda j: j.key != "teacher")  # the student trains against the teacher
    js = JobSet(root / "out", jobs, DataSource(root=str(world)), common_overrides=TINY)
    for job in jobs:
        js.train_stage(job).run()
        js.evaluate_stage(job).run()
    return world, js


def _metrics(doc):
    """The numbers of an official-format result (meta left out)."""
    return {(region, k): v for region in ("entire_area", "roi") for k, v in doc[region].items()}


def _same(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_model_kind_predicts_evaluates_and_exports_through_the_cli(zoo, kind, cli, capsys, tmp_path):
    world, js = zoo
    ckpt = js.checkpoint(kind)
    capsys.readouterr()
    assert cli("predict", ckpt, world, "--split", "val", "--out", tmp_path / "p") == 0
    out = capsys.readouterr().out
    lib = {p.name: p.read_text() for p in js.predictions(kind).glob("*.txt")}
    got = {p.name: p.read_text() for p in (tmp_path / "p").glob("*.txt")}
    assert got == lib and len(got) == 4
    assert sum(len(t.splitlines()) for t in got.values()) > 0  # (boxes outside the image are not written)
    reads_lidar = kind in ("teacher", "second_lidar")
    frame_lines = re.findall(r"^\d+: (\d+ radar \+ \d+ LiDAR|\d+) points, (\d+) detections.* ms -> ", out, re.M)
    assert len(frame_lines) == 4 and all(int(n) > 0 for _, n in frame_lines)
    assert all(("LiDAR" in pts) == reads_lidar for pts, _ in frame_lines)
    assert cli("eval", "--data", world, "--split", "val", "--pred", tmp_path / "p", "--json", tmp_path / "r.json") == 0
    mine = _metrics(json.loads((tmp_path / "r.json").read_text()))
    demo = _metrics(json.loads(js.result_file(kind).read_text()))
    assert mine.keys() == demo.keys() and all(_same(mine[k], demo[k]) for k in demo)
    capsys.readouterr()
    rc = cli("export", ckpt, "--out", tmp_path / "m.onnx", "--no-check")
    err = capsys.readouterr().err.strip()
    if KINDS[kind][1]:
        assert rc == 0 and (tmp_path / "m.onnx").stat().st_size > 10_000
    else:
        assert rc == 2 and not (tmp_path / "m.onnx").exists()
        assert len(err.splitlines()) == 1 and f"{ckpt}: a " in err and "cannot be exported" in err


def _val_frame(world, ckpt):
    exp, model = load_trained_model(ckpt, str(world))
    ds = RadarDataset(exp.dataset, "val", with_lidar=exp.needs_lidar, labeled=False)
    return exp, model.eval(), ds, ds.frame_ids[1], ds.load(1)


def test_bare_radar_and_lidar_files_give_the_dataset_routes_boxes(zoo, cli, capsys, tmp_path):
    """One val frame of the world as bare files: radar as stored, LiDAR in its own frame with
    the two calibration files, with the matrix they make in a text file, or already moved into
    the radar frame (.npy). All three give the boxes of the teacher on the dataset frame."""
    world, js = zoo
    exp, model, ds, fid, frame = _val_frame(world, js.checkpoint("teacher"))
    radar_bin = world / "radar_5frames" / "training" / "velodyne" / f"{fid}.bin"
    lidar_bin = world / "lidar" / "training" / "velodyne" / f"{fid}.bin"
    calibs = ["--radar-calib", world / "radar_5frames" / "training" / "calib" / f"{fid}.txt",
              "--lidar-calib", world / "lidar" / "training" / "calib" / f"{fid}.txt"]
    matrix = tmp_path / "lidar_to_radar.txt"
    T = frame.calib.radar_from_lidar
    matrix.write_text("# LiDAR -> radar\n" + "\n".join(" ".join(repr(float(v)) for v in row) for row in T[:3]) + "\n")
    in_radar = tmp_path / "in_radar.npy"
    np.save(in_radar, frame.lidar)
    ckpt = js.checkpoint("teacher")
    routes = {"calib": ["--lidar", lidar_bin, *calibs], "matrix": ["--lidar", lidar_bin, "--lidar-to-radar", matrix],
              "radar_frame": ["--lidar", in_radar], "untransformed": ["--lidar", lidar_bin]}
    texts = {}
    for name, args in routes.items():
        assert cli("predict", ckpt, radar_bin, *args, "--out", tmp_path / name) == 0
        texts[name] = (tmp_path / name / f"{fid}.txt").read_text()
    # the library on the dataset frame (LiDAR moved by the dataset reader)
    import torch

    with torch.no_grad():
        det = model.predict(collate([frame]))[0]
    expect = "".join(ln + "\n" for ln in radar_frame_lines(det, exp.dataset.classes))
    assert len(det) == 20 and texts["calib"] == texts["matrix"] == texts["radar_frame"] == expect
    assert texts["untransformed"] != expect  # the transform matters: the teacher does read LiDAR
    # and the CLI's dataset-root route wrote the same boxes (camera frame, back through the calib)
    from sckd.data.labels import read_labels

    kitti = read_labels(js.predictions("teacher") / f"{fid}.txt", frozenset(exp.dataset.classes))
    back = kitti.to_sensor(frame.calib)
    rows = np.array([[float(v) for v in ln.split()[1:8]] for ln in expect.splitlines()])
    assert np.allclose(back[:, :6], rows[:, :6], atol=2e-3)


def test_a_lidar_only_model_takes_lidar_files_alone(zoo, cli, tmp_path):
    world, js = zoo
    ckpt = js.checkpoint("second_lidar")
    exp, model, ds, fid, frame = _val_frame(world, ckpt)
    lidar_npy = tmp_path / f"{fid}.npy"
    np.save(lidar_npy, frame.lidar)
    assert cli("predict", ckpt, "--lidar", lidar_npy, "--out", tmp_path / "p") == 0
    import torch

    with torch.no_grad():
        det = model.predict(collate([frame]))[0]
    expect = "".join(ln + "\n" for ln in radar_frame_lines(det, exp.dataset.classes))
    assert (tmp_path / "p" / f"{fid}.txt").read_text() == expect and len(det) == 20


def test_teacher_plot_draws_the_lidar_it_read(zoo, cli, monkeypatch, tmp_path):
    import sckd.deploy.predict as dp

    world, js = zoo
    _, _, ds, fid, frame = _val_frame(world, js.checkpoint("teacher"))
    drawn = []
    real = dp.plot_frame_bev

    def spy(fr, *a, **k):
        drawn.append(fr)
        return real(fr, *a, **k)

    monkeypatch.setattr(dp, "plot_frame_bev", spy)
    assert cli("predict", js.checkpoint("teacher"), world, "--frames", fid, "--out", tmp_path, "--plot") == 0
    assert len(drawn) == 1 and np.array_equal(drawn[0].lidar, frame.lidar) and len(drawn[0].boxes) == 20
    assert (tmp_path / f"{fid}.png").stat().st_size > 20_000


def test_radar_only_model_ignores_lidar_with_one_warning(zoo, cli, caplog, tmp_path):
    import logging

    world, js = zoo
    ckpt = js.checkpoint("student")
    radar_bin = world / "radar_5frames" / "training" / "velodyne" / "00000.bin"
    assert cli("-q", "predict", ckpt, radar_bin, "--out", tmp_path / "a") == 0
    lidar = world / "lidar" / "training" / "velodyne" / "00000.bin"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sckd"):
        assert cli("-q", "predict", ckpt, radar_bin, "--lidar", lidar, "--out", tmp_path / "b") == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warned == [f"warning: the model reads radar only; --lidar {lidar} ignored"]
    assert (tmp_path / "a" / "00000.txt").read_text() == (tmp_path / "b" / "00000.txt").read_text()


def _bad_case(case, world, tmp_path):
    radar = world / "radar_5frames" / "training" / "velodyne" / "00000.bin"
    lidar = world / "lidar" / "training" / "velodyne" / "00000.bin"
    rcal = world / "radar_5frames" / "training" / "calib" / "00000.txt"
    if case == "no_lidar":
        return [radar], f"{radar}: the model reads LiDAR and radar; give each radar file its LiDAR cloud: --lidar"
    if case == "count":
        return [radar, tmp_path / "other.bin", "--lidar", lidar], "1 --lidar file(s) for 2 radar file(s)"
    if case == "kitti_as_matrix":
        return [radar, "--lidar", lidar, "--lidar-to-radar", rcal], f"{rcal}: a KITTI calibration file"
    if case == "not_rigid":
        (tmp_path / "m.txt").write_text("2 0 0 0\n0 1 0 0\n0 0 1 0\n")
        return [radar, "--lidar", lidar, "--lidar-to-radar", tmp_path / "m.txt"], "not a rigid LiDAR -> radar"
    if case == "nine_numbers":
        (tmp_path / "m.txt").write_text("Tr: 1 0 0 0 1 0 0 0 1\n")
        return [radar, "--lidar", lidar, "--lidar-to-radar", tmp_path / "m.txt"], "9 numbers, expected a 3x4 or 4x4"
    if case == "half_calib":
        return [radar, "--lidar", lidar, "--radar-calib", rcal], "--radar-calib and --lidar-calib go together"
    if case == "root_and_lidar":
        return [world, "--lidar", lidar], "--lidar pairs with bare radar files"
    if case == "missing_lidar":
        return [radar, "--lidar", tmp_path / "none.bin"], f"{tmp_path / 'none.bin'}: LiDAR file not found"
    # a copy of the world without its LiDAR tree
    shutil.copytree(world, tmp_path / "w", ignore=shutil.ignore_patterns("lidar"))
    return [tmp_path / "w"], "the model reads LiDAR and radar, but this dataset has no LiDAR tree"


@pytest.mark.parametrize("case", ["no_lidar", "count", "kitti_as_matrix", "not_rigid", "nine_numbers",
                                  "half_calib", "root_and_lidar", "missing_lidar", "root_without_lidar"])
def test_teacher_input_mistakes_are_one_line_errors(zoo, cli, capsys, tmp_path, case):
    world, js = zoo
    (tmp_path / "other.bin").write_bytes((world / "radar_5frames" / "training" / "velodyne" / "00000.bin").read_bytes())
    args, want = _bad_case(case, world, tmp_path)
    capsys.readouterr()
    assert cli("predict", js.checkpoint("teacher"), *args, "--out", tmp_path / "p") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and want in err, err


def test_lidar_to_radar_matrix_files_in_every_accepted_spelling(tmp_path):
    """3x4 and 4x4 text (comments, a KEY: prefix, commas and brackets) and .npy read as the same
    rigid matrix, which moves points as p_radar = R p_lidar + t."""
    from sckd.deploy.lidar_input import read_lidar_to_radar, to_radar_frame

    a = 0.3
    R = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    t = np.array([-2.5, 0.1, 1.2])
    rows = np.hstack([R, t[:, None]])
    spellings = {
        "plain.txt": "\n".join(" ".join(repr(float(v)) for v in r) for r in rows) + "\n",
        "full.txt": "# LiDAR -> radar\n" + "\n".join(" ".join(repr(float(v)) for v in r) for r in rows) + "\n0 0 0 1\n",
        "keyed.txt": "Tr_lidar_to_radar: " + " ".join(repr(float(v)) for v in rows.reshape(-1)) + "\n",
        "numpy.txt": repr(rows.tolist()) + "\n",
    }
    for name, text in spellings.items():
        (tmp_path / name).write_text(text)
    np.save(tmp_path / "m.npy", rows)
    for name in [*spellings, "m.npy"]:
        T = read_lidar_to_radar(tmp_path / name)
        assert T.shape == (4, 4) and np.array_equal(T[:3], rows) and np.array_equal(T[3], [0, 0, 0, 1]), name
    pts = np.array([[1.0, 2.0, 3.0, 50.0], [-4.0, 0.5, 0.0, 7.0]], np.float32)
    moved = to_radar_frame(pts, T)
    expect = np.array([R @ p[:3] + t for p in pts.astype(np.float64)])
    assert np.allclose(moved[:, :3], expect, atol=1e-6) and np.array_equal(moved[:, 3], pts[:, 3])
