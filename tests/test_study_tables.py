"""The study tables' rows that pair a student with a non-default teacher (`sckd reproduce
capacity`, `sckd reproduce cross`): each teacher / student pair builds from the shipped configs
with the row's overrides and takes one distillation step, with the maps the row names."""

from __future__ import annotations

import pytest
import torch
from helpers.vod_tree import make_vod_tree

from sckd.config import to_dict
from sckd.data.dataset import RadarDataset, collate
from sckd.engine import checkpoint as ck
from sckd.experiment.config import load_experiment
from sckd.experiment.train import build_model
from sckd.workflows.reproduce import load_table


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("study_rows")
    return make_vod_tree(root / "data", n_frames=3, splits={"train": [0, 1, 2], "val": [2]},
                         n_radar=40, n_lidar=300), root


@pytest.mark.parametrize("table,teacher_key,student_key,width,features", [
    ("capacity", "teacher_w64", "i_w64", 64, 7),
    ("cross", "teacher_af", "x_i_af", 32, 4),
    ("cross", "teacher", "x_i", 32, 4),
])
def test_student_rows_distil_from_their_own_teacher(tree, table, teacher_key, student_key, width, features,
                                                    one_torch_thread):
    data, root = tree
    jobs = {j.key: j for j in load_table(table).jobs}
    tj, sj = jobs[teacher_key], jobs[student_key]
    assert sj.teacher == teacher_key
    texp = load_experiment(f"experiments/synth/{tj.experiment}", tj.overrides)
    texp.dataset.root = str(data.root)
    torch.manual_seed(0)
    teacher = build_model(texp)
    path = root / f"{table}_{teacher_key}.pt"
    ck.save_checkpoint(ck.Checkpoint(teacher.state_dict(), to_dict(texp)), path)
    exp = load_experiment(f"experiments/synth/{sj.experiment}", [*sj.overrides, f"distill.teacher.checkpoint={path}"])
    exp.dataset.root = str(data.root)
    d = build_model(exp)
    assert texp.model.fusion.dropout == (teacher_key != "teacher_af")
    assert d.layout == [("lidar", width), ("radar", width)]  # the teacher's fused map, from its checkpoint
    assert d.lrfd_adapter.out_channels == width
    assert d.student.encoders["radar"].point_features.names == exp.model.encoders["radar"].point_features
    assert len(exp.model.encoders["radar"].point_features) == features
    for k, v in teacher.state_dict().items():
        assert torch.equal(d.teacher.state_dict()[k], v)
    ds = RadarDataset(exp.dataset, "train", with_lidar=True, labeled=True)
    out = d.training_step(collate([ds[0], ds[1]]))
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and {"loss_lrfd", "loss_frfd", "loss_ssod"} <= set(out)
