"""The bad-input matrix: every kind of broken file, config or argument a user can feed the real
``sckd`` command, each with the exact one-line message it must get.

Each case builds its bad input in a fresh hand-made VoD tree (tests/helpers/vod_tree.py), runs
``sckd.cli.main`` in-process and checks: exit code 2, exactly one line on stderr, equal to the
expected ``error: <file or key>: <problem>`` line, and no traceback. Cases where continuing is
right (NaN points, empty clouds, unknown classes, missing prediction files) must finish with
exit code 0 and a counted warning. One case runs as a real process to show that nothing but the
one line reaches stderr there either (including errors raised inside DataLoader workers).

Cases already covered through ``sckd info`` in test_info_cli.py are run here through the
commands that read the same files on other paths (``train``'s loader, ``eval``'s GT reader),
so the matrix is the complete list of bad inputs with the message each gets.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.tiny_vod_config import tiny_radar_config
from helpers.vod_tree import make_vod_tree

from sckd.cli import main
from sckd.errors import SckdError, warnings

TINY = tiny_radar_config("bad_inputs", "{epochs: 1, batch_size: 2, workers: 0, "
                         "val_every: 1, log_every: 1, progress: false, seed: 1}")

# A SCKD teacher (LiDAR + radar, adaptive fusion) and student on the same tiny grid.
NET = """
base: [experiments/base_train.yaml, datasets/vod.yaml, models/head_vod.yaml]
dataset: {point_cloud_range: [0.0, -12.8, -3.0, 25.6, 12.8, 2.0]}
model:
  backbone_2d: {layer_nums: [1, 1], layer_strides: [1, 2], num_filters: [8, 16],
                upsample_strides: [1, 2], num_upsample_filters: [8, 8]}
train: {epochs: 1, batch_size: 2, workers: 0, val_every: 1, log_every: 1, progress: false, seed: 1}
"""
RADAR = ("{type: pillar, input: radar, point_features: [x, y, z, rcs], voxel_size: [0.64, 0.64, 5.0], "
         "pillar: {num_filters: [4]}}")
LIDAR = ("{type: pillar, input: lidar, point_features: [x, y, z, reflectance], voxel_size: [0.64, 0.64, 5.0], "
         "pillar: {num_filters: [4]}}")
TEACHER = NET + f"""
name: bad_teacher
model:
  name: bad_teacher
  encoders: {{lidar: {LIDAR}, radar: {RADAR}}}
  fusion: {{type: adaptive, order: [lidar, radar]}}
"""
STUDENT = NET + f"""
name: bad_student
model:
  name: bad_student
  encoders: {{radar: {RADAR}}}
  fusion: {{type: none}}
distill:
  teacher: {{checkpoint: ""}}
"""


@dataclass
class World:
    """A 5-frame VoD tree (train 00000-00002, val 00003-00004) and the paths the cases touch.

    Paths are the ones the readers report: labels and ImageSets through the radar tree's
    symlinks into ``lidar/``, exactly as in the distributed VoD.
    """

    tmp: Path
    root: Path
    cfg: Path

    @property
    def radar_dir(self) -> Path:
        return self.root / "radar_5frames" / "training" / "velodyne"

    @property
    def calib_dir(self) -> Path:
        return self.root / "radar_5frames" / "training" / "calib"

    @property
    def label_dir(self) -> Path:
        return self.root / "radar_5frames" / "training" / "label_2"

    @property
    def sets_dir(self) -> Path:
        return self.root / "radar_5frames" / "ImageSets"

    @property
    def pred(self) -> Path:
        """A prediction folder: the val GT of the evaluated classes fed back (16 fields, score 1)."""
        return self.tmp / "pred"

    def write_predictions(self) -> None:
        self.pred.mkdir()
        for fid in ("00003", "00004"):
            lines = (self.label_dir / f"{fid}.txt").read_text().splitlines()
            keep = [ln for ln in lines if ln.split()[0] in ("Car", "Pedestrian", "Cyclist")]
            (self.pred / f"{fid}.txt").write_text("".join(ln + "\n" for ln in keep))

    def train(self, *extra) -> list:
        return ["train", self.cfg, "--data", self.root, "--out", self.tmp / "run", "--no-progress", *extra]

    def eval(self, *extra) -> list:
        return ["eval", "--data", self.root, "--split", "val", "--pred", self.pred, *extra]

    def info(self, *extra) -> list:
        return ["info", self.root, "--no-progress", *extra]

    def edit(self, path: Path, old: str, new: str) -> None:
        text = path.read_text()
        assert old in text, (path, old)
        path.write_text(text.replace(old, new, 1))

    def detector_checkpoint(self, name: str = "det.pt", cfg: Path | None = None) -> Path:
        """A valid checkpoint (format, weights, stored config, signature) of ``cfg``'s model,
        written without training."""
        from sckd.engine import checkpoint as ck
        from sckd.config import to_dict
        from sckd.experiment.config import load_experiment, model_key
        from sckd.experiment.train import build_model

        exp = load_experiment(cfg or self.cfg)
        exp.dataset.root = str(self.root)
        torch.manual_seed(0)
        model = build_model(exp)
        path = self.tmp / name
        ck.save_checkpoint(ck.Checkpoint(model.state_dict(), to_dict(exp), ck.model_signature(model, model_key(exp))), path)
        return path

    def teacher(self) -> tuple[Path, Path]:
        """(teacher checkpoint, student config)."""
        (self.tmp / "teacher.yaml").write_text(TEACHER)
        (self.tmp / "student.yaml").write_text(STUDENT)
        return self.detector_checkpoint("teacher.pt", self.tmp / "teacher.yaml"), self.tmp / "student.yaml"


@pytest.fixture
def world(tmp_path) -> World:
    tree = make_vod_tree(tmp_path / "data", n_frames=5, splits={"train": [0, 1, 2], "val": [3, 4]})
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    w = World(tmp_path, tree.root, cfg)
    w.write_predictions()
    return w


@pytest.fixture(autouse=True)
def fresh_warning_counter():
    """Counted warnings are process-wide; each case starts from zero."""
    warnings.counts.clear()
    warnings.examples.clear()
    yield


# Every case: (world) -> (argv, expected stderr line without 'error: ' | compiled regex).
Case = Callable[[World], tuple[list, "str | re.Pattern"]]
CASES: dict[str, Case] = {}


def case(fn: Case) -> Case:
    CASES[fn.__name__] = fn
    return fn


# ------------------------------------------------------------------ point clouds (.bin)

@case
def bin_truncated_read_in_a_loader_worker(w):
    # 50 points x 7 float32 = 1400 bytes; 6 bytes lost. Read by a DataLoader worker process,
    # whose re-raised exception text carries the worker's traceback: still one line.
    p = w.radar_dir / "00001.bin"
    p.write_bytes(p.read_bytes()[:-6])
    return w.train("--workers", "1"), (f"{p}: size 1394 bytes is not a multiple of 28 (7 float32 features "
                                       "per point); check the dataset's feature list")


@case
def bin_odd_size_in_validation(w):
    p = w.radar_dir / "00004.bin"
    p.write_bytes(p.read_bytes() + b"\x00\x00")
    return w.train(), (f"{p}: size 1402 bytes is not a multiple of 28 (7 float32 features per point); "
                       "check the dataset's feature list")


@case
def dataset_feature_count_differs_from_files(w):
    # 1400 bytes are not whole rows of 6 float32 (24 bytes): the config lists a feature too few.
    return (w.info("--set", "dataset.radar.features=[x, y, z, rcs, v_r, v_r_comp]"),
            f"{w.radar_dir / '00000.bin'}: size 1400 bytes is not a multiple of 24 (6 float32 features per "
            "point); check the dataset's feature list")


@case
def model_features_missing_from_dataset(w):
    return (w.train("--set", "dataset.radar.features=[x, y, z, rcs]"),
            "config key 'model.encoders.radar.point_features': ['v_r', 'v_r_comp', 'time'] not among "
            "dataset.radar.features ['x', 'y', 'z', 'rcs']")


@case
def bin_missing_for_a_listed_frame(w):
    (w.radar_dir / "00002.bin").unlink()
    return w.train(), (f"{w.sets_dir / 'train.txt'}: frame 00002 is listed but {w.radar_dir / '00002.bin'} "
                       "does not exist")


# ------------------------------------------------------------------ calibration

@case
def calib_missing(w):
    (w.calib_dir / "00001.txt").unlink()
    return w.train(), f"{w.calib_dir / '00001.txt'}: calibration file is missing"


@case
def calib_key_missing(w):
    p = w.calib_dir / "00002.txt"
    w.edit(p, "Tr_velo_to_cam:", "Tr_velo_to_radar:")
    return w.train(), f"{p}: calib key Tr_velo_to_cam is missing"


@case
def calib_value_not_numeric(w):
    p = w.calib_dir / "00000.txt"
    w.edit(p, "P2: 1495.468642", "P2: 1495,468642")
    return w.train(), f"{p}:3: non-numeric value in calib key P2"


@case
def calib_wrong_number_of_values(w):
    # the val split's calibrations are read before training starts
    p = w.calib_dir / "00003.txt"
    w.edit(p, "R0_rect: 1.0 0.0", "R0_rect: 1.0")
    return w.train(), f"{p}:5: calib key R0_rect has 8 values, expected 9"


# ------------------------------------------------------------------ labels

def _append(path: Path, line: str) -> int:
    """Append a line; returns its 1-based line number."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [line]) + "\n")
    return len(lines) + 1


@case
def label_wrong_field_count(w):
    p = w.label_dir / "00003.txt"
    n = _append(p, "Car 0 0 0.0 100.0 200.0 300.0 400.0 1.5 1.8 4.0 1.0 1.5")
    return w.eval(), f"{p}:{n}: label line has 13 fields, expected 15 or 16"


@case
def label_negative_size(w):
    p = w.label_dir / "00004.txt"
    n = _append(p, "Car 0 0 0.0 100.0 200.0 300.0 400.0 1.5 -1.8 4.0 1.0 1.5 10.0 0.0 1.0")
    return w.eval(), f"{p}:{n}: negative box size (h w l = 1.5 -1.8 4.0)"


@case
def label_not_a_number(w):
    p = w.label_dir / "00003.txt"
    n = _append(p, "Car 0 0 0.0 100.0 200.0 300.0 400.0 1.5 1.8 4.0 1.0 1.5 ten 0.0 1.0")
    return w.eval(), f"{p}:{n}: z is not a number ('ten')"


@case
def label_not_finite_in_training(w):
    p = w.label_dir / "00001.txt"
    n = _append(p, "Car 0 0 0.0 100.0 200.0 300.0 400.0 1.5 1.8 4.0 inf 1.5 10.0 0.0 1.0")
    return w.train(), f"{p}:{n}: x is not finite ('inf')"


@case
def label_file_missing(w):
    (w.root / "lidar" / "training" / "label_2" / "00000.txt").unlink()
    return w.train(), f"{w.label_dir / '00000.txt'}: label file is missing"


@case
def label_file_not_text(w):
    p = w.label_dir / "00004.txt"
    p.write_bytes(b"\xff\xfeC\x00a\x00r\x00")
    return w.eval(), (f"{p}: cannot read label file ('utf-8' codec can't decode byte 0xff in position 0: "
                      "invalid start byte)")


# ------------------------------------------------------------------ splits

@case
def split_names_a_missing_frame(w):
    _append(w.sets_dir / "val.txt", "00009")
    return w.eval(), (f"{w.sets_dir / 'val.txt'}: frame 00009 is listed but {w.radar_dir / '00009.bin'} "
                      "does not exist")


@case
def split_empty(w):
    (w.sets_dir / "train.txt").write_text("\n\n")
    return w.train(), f"{w.sets_dir / 'train.txt'}: split 'train' is empty"


@case
def split_file_missing(w):
    return w.eval("--split", "test"), f"{w.sets_dir / 'test.txt'}: split file for 'test' is missing"


@case
def split_line_with_two_ids(w):
    (w.sets_dir / "val.txt").write_text("00003 00004\n")
    return w.eval(), f"{w.sets_dir / 'val.txt'}:1: expected one frame id per line, got '00003 00004'"


@case
def split_not_configured(w):
    return w.eval("--split", "unlabeled"), ("config key 'dataset.splits': no split named 'unlabeled' "
                                           "(known: test, train, val)")


# ------------------------------------------------------------------ prediction folders

@case
def prediction_line_wrong_field_count(w):
    p = w.pred / "00004.txt"
    n = _append(p, "Car -1 -1 0.1 10 20 30 40 1.5 1.8 4.0 0.9")
    return w.eval(), f"{p}:{n}: label line has 12 fields, expected 15 or 16"


@case
def prediction_score_not_a_number(w):
    p = w.pred / "00003.txt"
    n = _append(p, "Car -1 -1 0.1 10 20 30 40 1.5 1.8 4.0 1.0 1.5 10.0 0.0 high")
    return w.eval(), f"{p}:{n}: score is not a number ('high')"


@case
def prediction_score_nan(w):
    p = w.pred / "00003.txt"
    n = _append(p, "Car -1 -1 0.1 10 20 30 40 1.5 1.8 4.0 1.0 1.5 10.0 0.0 nan")
    return w.eval(), f"{p}:{n}: score is not finite ('nan')"


@case
def prediction_negative_size(w):
    p = w.pred / "00004.txt"
    n = _append(p, "Car -1 -1 0.1 10 20 30 40 -1.5 1.8 4.0 1.0 1.5 10.0 0.0 0.5")
    return w.eval(), f"{p}:{n}: negative box size (h w l = -1.5 1.8 4.0)"


@case
def prediction_folder_matches_no_frame(w):
    # files named 3.txt / 4.txt instead of 00003.txt / 00004.txt: AP 0 would hide the mistake
    d = w.tmp / "renamed"
    d.mkdir()
    for p in w.pred.iterdir():
        p.rename(d / f"{int(p.stem)}.txt")
    return (["eval", "--data", w.root, "--pred", d],
            f"{d}: no prediction file for any of the 2 frames of split 'val' (expected <frame>.txt, "
            "e.g. 00003.txt)")


# ------------------------------------------------------------------ checkpoints

@case
def checkpoint_truncated(w):
    p = w.detector_checkpoint()
    p.write_bytes(p.read_bytes()[:3000])
    out = w.tmp / "preds"
    return ["predict", p, "--data", w.root, "--out", out], re.compile(
        re.escape(f"{p}: not a readable checkpoint (truncated, corrupt or not a torch file; ") + r"[A-Za-z]+Error: .+\)")


@case
def checkpoint_empty_file(w):
    p = w.tmp / "empty.pt"
    p.write_bytes(b"")
    return (["predict", p, "--data", w.root, "--out", w.tmp / "preds"],
            f"{p}: not a readable checkpoint (truncated, corrupt or not a torch file; EOFError: )")


@case
def checkpoint_not_from_sckd(w):
    p = w.tmp / "plain.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, p)
    return (["predict", p, "--data", w.root, "--out", w.tmp / "preds"],
            f"{p}: not an sckd checkpoint (expected format 'sckd-ckpt-2')")


@case
def checkpoint_of_another_model_resumed(w):
    other = w.tmp / "other.yaml"
    other.write_text(TINY.replace("num_filters: [8, 16]", "num_filters: [8, 32]"))
    p = w.detector_checkpoint("other.pt", other)
    return w.train("--resume", p), re.compile(
        re.escape(f"{p}: checkpoint is from another model or model config (signature ")
        + r"[0-9a-f]{16} != [0-9a-f]{16}\); use the config it was trained with")


@case
def checkpoint_weights_differ_from_stored_config(w):
    # weights of one architecture under a config of another (e.g. a hand-edited checkpoint)
    import yaml

    from sckd.engine import checkpoint as ck

    p = w.detector_checkpoint()
    data = ck.load_checkpoint(p)
    data.config["model"]["backbone_2d"]["num_filters"] = [8, 32]
    ck.save_checkpoint(data, p)
    return ["predict", p, "--data", w.root, "--out", w.tmp / "preds"], re.compile(
        re.escape(f"{p}: checkpoint is from another model or model config (signature ") + r".*")


@case
def checkpoint_truncated_as_latest_of_a_run(w):
    # a run folder whose newest periodic checkpoint was cut short (a copy, a full disk):
    # continuing it names that file
    ck_dir = w.tmp / "run" / "checkpoints"
    ck_dir.mkdir(parents=True)
    p = ck_dir / "step_00000002.pt"
    p.write_bytes(w.detector_checkpoint().read_bytes()[:5000])
    return w.train(), re.compile(re.escape(f"{p}: not a readable checkpoint (truncated, corrupt or not a torch "
                                           "file; ") + r"[A-Za-z]+Error: .+\)")


@case
def checkpoint_without_training_state_resumed(w):
    # weights only (like a distillation run's exported best.pt): fine for predict, not for resume
    p = w.detector_checkpoint()
    return w.train("--resume", p), (f"{p}: holds no training state (optimiser and schedule), so training "
                                    "cannot continue from it; resume from a step_*.pt checkpoint of the run")


@case
def checkpoint_missing(w):
    p = w.tmp / "runs" / "best.pt"
    return ["predict", p, "--data", w.root, "--out", w.tmp / "preds"], f"{p}: checkpoint not found"


# ------------------------------------------------------------------ config files

@case
def config_unknown_key(w):
    w.edit(w.cfg, "name: bad_inputs\n  encoders:", "name: bad_inputs\n  colour: red\n  encoders:")
    return w.train(), re.compile(re.escape("config key 'model.colour': unknown key (allowed here: ")
                                 + r"[a-z_, 0-9]+\)")


@case
def config_wrong_type(w):
    w.edit(w.cfg, "batch_size: 2", "batch_size: two")
    return w.train(), "config key 'train.batch_size': expected an integer, got 'two'"


@case
def config_value_out_of_range(w):
    w.edit(w.cfg, "seed: 1}", "seed: 1, lr: -0.01}")
    return w.train(), "config key 'train.lr': must be > 0, got -0.01"


@case
def config_invalid_yaml(w):
    w.edit(w.cfg, "  encoders:\n", "  encoders: [\n")  # line 9; the parser stumbles on line 10
    return w.train(), f"{w.cfg}: invalid YAML at line 10"


@case
def config_base_not_found(w):
    w.edit(w.cfg, "datasets/vod.yaml", "datasets/vood.yaml")
    return w.train(), re.compile(r"datasets/vood\.yaml: config file not found \(looked next to the including "
                                 r"file, in the current folder and in .*\)")


@case
def config_python_tag_is_not_run(w):
    marker = w.tmp / "ran"
    w.cfg.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n" + w.cfg.read_text())
    return w.train(), f"{w.cfg}: invalid YAML at line 1"


# ------------------------------------------------------------------ teacher checkpoints

@case
def teacher_bev_grid_differs_from_student(w):
    teacher, student = w.teacher()
    return (["train", student, "--data", w.root, "--out", w.tmp / "run", "--set",
             f"distill.teacher.checkpoint={teacher}", "--set", "model.encoders.radar.voxel_size=[1.28, 1.28, 5.0]"],
            "config key 'distill.teacher': teacher BEV map 40x40 differs from the student's 20x20; feature "
            "distillation needs one BEV grid")


@case
def teacher_weights_differ_from_its_config(w):
    import yaml

    from sckd.engine import checkpoint as ck

    teacher, student = w.teacher()
    data = ck.load_checkpoint(teacher)
    data.config["model"]["encoders"]["radar"]["pillar"]["num_filters"] = [6]
    ck.save_checkpoint(data, teacher)
    return (["train", student, "--data", w.root, "--out", w.tmp / "run", "--set",
             f"distill.teacher.checkpoint={teacher}"],
            re.compile(re.escape(f"{teacher}: weights do not fit the teacher model of {teacher} (") + r".+\)"))


# ------------------------------------------------------------------ --set overrides

@case
def set_teacher_path_missing(w):
    _, student = w.teacher()
    nope = w.tmp / "nope" / "best.pt"
    return (["train", student, "--data", w.root, "--out", w.tmp / "run", "--set", f"distill.teacher.checkpoint={nope}"],
            f"{nope}: checkpoint not found")


@case
def set_without_value(w):
    return w.train("--set", "train.epochs"), "--set train.epochs: expected KEY=VALUE, e.g. train.epochs=10"


@case
def set_unknown_section_in_train(w):
    return w.train("--set", "trian.epochs=2"), ("config key 'trian': unknown key (allowed here: augment, dataset, "
                                                "distill, eval, model, name, pool, train)")


@case
def set_unknown_section_in_eval(w):
    return w.eval("--set", "evl.min_height_px=20"), ("--set evl.min_height_px=20: unknown section 'evl' "
                                                     "(this command reads dataset, eval)")


@case
def set_unknown_section_in_info(w):
    return w.info("--set", "datset.radar.tree=radar"), ("--set datset.radar.tree=radar: unknown section "
                                                        "'datset' (this command reads dataset)")


@case
def set_through_a_value(w):
    return (w.train("--set", "model.encoders.radar.voxel_size.x=0.2"),
            "--set model.encoders.radar.voxel_size.x=0.2: 'model.encoders.radar.voxel_size' is a value, not a section")


@case
def set_empty_key_segment(w):
    return w.eval("--set", "eval..min_height_px=20"), ("--set eval..min_height_px=20: empty key segment in "
                                                       "'eval..min_height_px'")


@case
def set_wrong_type(w):
    return w.eval("--set", "eval.min_height_px=tall"), "config key 'eval.min_height_px': expected a number, got 'tall'"


def test_the_matrix_is_big_enough():
    assert len(CASES) >= 40


def _one_error_line(capsys, rc: int) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0][len("error: "):]


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_gets_its_one_line_error(name, world, capsys):
    argv, expected = CASES[name](world)
    line = _one_error_line(capsys, main([str(a) for a in argv]))
    if isinstance(expected, str):
        assert line == expected
    else:
        assert expected.fullmatch(line), line
    assert not (world.tmp / "ran").exists()  # the YAML tag case: nothing was executed


def test_debug_shows_the_traceback(world):
    with pytest.raises(SckdError, match="split file for 'test' is missing"):
        main([str(a) for a in ["--debug", *world.eval("--split", "test")]])


# ------------------------------------------------------------------ counted warnings

def test_training_continues_past_odd_frames_with_counted_warnings(world, capsys, caplog):
    w = world
    (w.radar_dir / "00000.bin").write_bytes(b"")  # a frame without any radar return
    far = np.fromfile(w.radar_dir / "00001.bin", "<f4").reshape(-1, 7)
    far[:, 0] += 500.0  # every point beyond the 25.6 m range
    far.tofile(w.radar_dir / "00001.bin")
    bad = np.fromfile(w.radar_dir / "00002.bin", "<f4").reshape(-1, 7)
    bad[3, 2], bad[7, 4] = np.nan, np.inf
    bad.tofile(w.radar_dir / "00002.bin")
    w.edit(w.label_dir / "00002.txt", "bicycle", "hoverboard")
    with caplog.at_level(logging.WARNING, logger="sckd"):
        rc = main([str(a) for a in w.train()])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert out.out.startswith("finished: ")
    assert dict(warnings.counts) == {
        "empty radar point cloud kept as 0 points": 1,
        "radar point cloud with no point inside dataset.point_cloud_range": 1,
        "radar point cloud rows with NaN/inf dropped": 1,
        "label of an unknown class kept as 'other'": 1,
    }
    assert warnings.examples["radar point cloud rows with NaN/inf dropped"] == \
        f"2 of 50 in {w.radar_dir / '00002.bin'}"
    assert f"{w.radar_dir / '00001.bin'}" in caplog.text and "'hoverboard'" in caplog.text
    from sckd.engine import checkpoint as ck
    final = ck.load_checkpoint(w.tmp / "run" / "checkpoints" / "final.pt")
    assert all(torch.isfinite(v).all() for v in final.model.values() if v.is_floating_point())


def test_eval_counts_missing_prediction_files_and_unknown_classes(world, capsys, caplog):
    w = world
    (w.pred / "00004.txt").unlink()
    n = _append(w.pred / "00003.txt", "Tram -1 -1 0.1 10 20 30 40 1.5 1.8 4.0 1.0 1.5 10.0 0.0 0.5")
    _append(w.pred / "00003.txt", "Tram -1 -1 0.1 10 20 30 40 1.5 1.8 4.0 5.0 1.5 10.0 0.0 0.4")
    with caplog.at_level(logging.WARNING, logger="sckd"):
        rc = main([str(a) for a in w.eval()])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "Entire annotated area" in out.out
    assert f"1 of 2 frames have no prediction file in {w.pred}; they count as frames without detections" \
        in caplog.text
    assert (f"warning: label of an unknown class kept as 'other': 2 time(s), e.g. 'Tram' in "
            f"{w.pred / '00003.txt'}:{n}") in caplog.text


# ------------------------------------------------------------------ a real process

def test_real_process_prints_one_line_and_exit_code_2(world):
    """The worker-raised error of a real ``sckd train``: nothing but the line on stderr."""
    argv, expected = CASES["bin_truncated_read_in_a_loader_worker"](world)
    r = subprocess.run([sys.executable, "-m", "sckd", "-q", *map(str, argv)], capture_output=True, text=True,
                       timeout=300, cwd=world.tmp)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"error: {expected}"], r.stderr
