"""The study tables' rows that pair a student with a non-default teacher (`sckd reproduce
capacity`, `sckd reproduce cross`): each teacher / student pair builds from the shipped configs
with the row's overrides and takes one distillation step, with the maps the row names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.vod_tree import make_vod_tree

from sckd.config import CONFIG_ROOT, to_dict
from sckd.data.dataset import RadarDataset, collate
from sckd.engine import checkpoint as ck
from sckd.errors import SckdError
from sckd.experiment.config import load_experiment
from sckd.experiment.train import build_model
from sckd.workflows.table_spec import load_table


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("study_rows")
    return make_vod_tree(root / "data", n_frames=3, splits={"train": [0, 1, 2], "val": [2]},
                         n_radar=40, n_lidar=300), root


@pytest.mark.parametrize("table,teacher_key,student_key,width,features", [
    ("capacity", "teacher_w64", "i_w64", 64, 7),
    ("capacity", "teacher", "i_second", 32, 7),
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
    assert type(d.student.encoders["radar"]).__name__ == ("VoxelEncoder" if "second" in student_key else "PillarEncoder")
    ds = RadarDataset(exp.dataset, "train", with_lidar=True, labeled=True)
    out = d.training_step(collate([ds[0], ds[1]]))
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and {"loss_lrfd", "loss_frfd", "loss_ssod"} <= set(out)


def test_report_tabulates_the_finished_runs_and_runs_nothing(tmp_path, cli, capsys):
    """`sckd reproduce TABLE --report`: the finished stages (marker and output present) make the
    table, rows with fewer splits done say how many; nothing is trained."""
    import json

    from sckd.eval.result import KINDS, ClassAP, EvalResult
    from sckd.workflows.reproduce import Reproduction

    out = tmp_path / "out"
    rep = Reproduction(out, "sigma", None)
    classes = ["Car", "Pedestrian", "Cyclist"]
    per = {c: ClassAP(dict.fromkeys(KINDS, 40.0), dict.fromkeys(KINDS, 0.0), 3) for c in classes}
    done = [(0, "s01"), (1, "s01"), (2, "s01"), (0, "s03")]
    for k, key in done:
        js = rep.fold_sets[k]
        js.result_file(key).parent.mkdir(parents=True, exist_ok=True)
        js.result_file(key).write_text(json.dumps(EvalResult(classes, {"entire_area": per, "roi": per}, 1, 1)
                                                  .to_official_json()))
        (out / ".stages").mkdir(parents=True, exist_ok=True)
        (out / ".stages" / f"fold{k}-eval-{key}.json").write_text(json.dumps({"seconds": 60.0, "info": {}}))
    (out / ".stages" / "fold1-eval-s02.json").write_text(json.dumps({"seconds": 5.0, "info": {}}))  # no output
    result, n = rep.finished()
    assert sorted(r.name for r in result.records) == sorted(f"fold{k}-eval-{key}" for k, key in done)
    assert n == len(rep.stages()) and result.total_stage_seconds == 240.0
    assert cli("reproduce", "sigma", "--out", out, "--report") == 0
    text = capsys.readouterr().out
    assert "4 of" in text and "(1/3)" in text
    md = (out / "sigma.md").read_text()
    assert "| (b) SSOD, sigma 0.1 (paper) | 40.00 ± 0.00 |" in md and "Total time 4m00s" in md
    assert not (out / "world").exists() and not (out / "fold0" / "runs").exists()


def test_a_run_carried_as_markers_and_results_trains_only_what_is_left(tmp_path, cli, capsys):
    """`--report --save KEEP` copies markers and results, and the checkpoint of a finished
    training that a stage still to run reads (here a teacher whose scoring and students had not
    run), none other; copied into a new OUT, the same table skips the finished rows' trainings
    (only done scorings read them) and that teacher's, and trains the rest."""
    import json
    import shutil
    from dataclasses import replace

    from sckd.eval.result import KINDS, ClassAP, EvalResult
    from sckd.workflows.pipeline import Pipeline
    from sckd.workflows.reproduce import Reproduction

    classes = ["Car", "Pedestrian", "Cyclist"]
    per = {c: ClassAP(dict.fromkeys(KINDS, 30.0), dict.fromkeys(KINDS, 0.0), 3) for c in classes}
    result = json.dumps(EvalResult(classes, {"entire_area": per, "roi": per}, 1, 1).to_official_json())

    w = {"w": torch.arange(6.0)}
    trained = ck.Checkpoint(w, {"name": "t"}, "sig", epoch=2, optimizer={"state": {0: {"m": torch.ones(6)}}},
                            scheduler={"last_epoch": 2}, iters_per_epoch=3)

    def stand_in(stage, ran):
        def go():
            ran.append(stage.name)
            for o in stage.outputs:
                o.parent.mkdir(parents=True, exist_ok=True)
                if o.suffix == ".pt":
                    ck.save_checkpoint(trained, o)
                else:
                    o.write_text(result if o.suffix == ".json" else "weights")
        return replace(stage, run=go)

    out, keep, new = tmp_path / "out", tmp_path / "keep", tmp_path / "new"
    rep = Reproduction(out, "sigma", None)
    first = [s for s in rep.stages() if s.name == "world" or s.name.startswith("fold0-")]
    first.append(next(s for s in rep.stages() if s.name == "fold1-train-teacher"))  # its scoring did not run
    ran: list[str] = []
    Pipeline(out, [stand_in(s, ran) for s in first], lambda _: None).run()
    assert len(ran) == len(first)
    (out / ".stages" / "fold0-train-other.json").write_text("{}")  # another table's, in the same OUT
    (out / "fold0" / "results" / "other.json").write_text(result)
    assert cli("reproduce", "sigma", "--out", out, "--report", "--save", keep) == 0
    said = capsys.readouterr().out
    assert not list(keep.glob("**/*other*"))
    n_results = sum(s.name.startswith("fold0-eval-") for s in first)
    assert f"saved {len(first) + n_results + 1} marker, result and checkpoint files" in said
    assert sorted(p.relative_to(keep) for p in keep.glob("**/*.pt")) == [Path("fold1/checkpoints/teacher.pt")]
    kept = ck.load_checkpoint(keep / "fold1" / "checkpoints" / "teacher.pt")  # weights and config, no optimiser
    assert torch.equal(kept.model["w"], w["w"]) and kept.signature == "sig" and kept.config == {"name": "t"}
    assert kept.optimizer is None and not kept.has_training_state
    assert not (keep / "world").exists()

    shutil.copytree(keep, new)
    assert cli("reproduce", "sigma", "--out", new, "--report") == 0
    capsys.readouterr()
    assert (new / "sigma.md").read_text() == (out / "sigma.md").read_text()  # same rows, same times

    lines: list[str] = []
    ran = []
    rep2 = Reproduction(new, "sigma", None)
    Pipeline(new, [stand_in(s, ran) for s in rep2.stages()], lines.append).run()
    fold0_trainings = [s.name for s in first if s.name.startswith("fold0-train-")]
    assert not [n for n in ran if n.startswith("fold0-")]  # their scorings are done
    assert "fold1-train-teacher" not in ran and "world" in ran  # the rest needs the world again
    assert sorted(ran) == sorted(s.name for s in rep2.stages()
                                 if not s.name.startswith("fold0-") and s.name != "fold1-train-teacher")
    assert sum("not needed" in line for line in lines) == len(fold0_trainings)


def test_save_without_report_is_a_one_line_error(tmp_path, cli, capsys):
    assert cli("reproduce", "sigma", "--out", tmp_path / "out", "--save", tmp_path / "keep") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--save" in err and "--report" in err and not (tmp_path / "keep").exists()


def test_deploy_slim_student_distils_from_the_radar_only_paper_size_run(tree, one_torch_thread):
    """`sckd reproduce deploy`'s slim_kd row: the paper-size SECOND (radar only) teaches the slim
    backbone on the same BEV grid through pseudo-labels, its map (FRFD, one adapter) and GT."""
    data, root = tree
    jobs = {j.key: j for j in load_table("deploy").jobs}
    assert jobs["slim_kd"].teacher == "paper"
    texp = load_experiment(f"experiments/synth/{jobs['paper'].experiment}")
    texp.dataset.root = str(data.root)
    torch.manual_seed(0)
    teacher = build_model(texp)
    assert texp.model.backbone_2d.layer_nums == [5, 5] and texp.model.encoders["radar"].voxel_size == [0.05, 0.05, 0.1]
    path = root / "deploy_paper.pt"
    ck.save_checkpoint(ck.Checkpoint(teacher.state_dict(), to_dict(texp)), path)
    exp = load_experiment(f"experiments/synth/{jobs['slim_kd'].experiment}", [f"distill.teacher.checkpoint={path}"])
    exp.dataset.root = str(data.root)
    d = build_model(exp)
    assert d.layout == [("radar", 256)] and not d.needs_lidar and not hasattr(d, "lrfd_adapter")
    assert exp.model.backbone_2d.num_filters == [64, 128]
    assert to_dict(exp.model.encoders["radar"]) == to_dict(texp.model.encoders["radar"])  # same encoder
    ds = RadarDataset(exp.dataset, "train", with_lidar=False, labeled=True)
    out = d.training_step(collate([ds[0], ds[1]]))
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and {"loss_frfd", "loss_ssod", "loss_gt"} <= set(out) and "loss_lrfd" not in out


def test_report_on_a_missing_folder_is_a_one_line_error(tmp_path, cli, capsys):
    assert cli("reproduce", "deploy", "--out", tmp_path / "none", "--report") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no such folder" in err and not (tmp_path / "none").exists()


@pytest.mark.parametrize("table", ["deploy", "table3", "sigma"])
def test_every_job_is_evaluated_right_after_its_training(tmp_path, table):
    """One split (deploy, table3) or several (sigma): a job's evaluation follows its training
    (on each split) before the next job trains, so a run stopped half-way, or `--report` beside a
    long one, already has the rows of the jobs done."""
    from sckd.workflows.reproduce import Reproduction

    rep = Reproduction(tmp_path / "out", table, None)
    names = [s.name for s in rep.stages() if s.name != "world"]
    keys = [j.key for j in load_table(table).jobs]
    assert len(names) == 2 * len(keys) * len(rep.fold_sets)  # a training and an evaluation each
    for i in range(0, len(names), 2):
        train, ev = names[i], names[i + 1]
        assert "train-" in train and ev == train.replace("train-", "eval-"), names
    jobs_in_order = [n.split("train-")[1] for n in names if "train-" in n]
    assert jobs_in_order == sorted(jobs_in_order, key=keys.index)  # job by job, splits inside


@pytest.mark.parametrize("table", ["study", "sigma", "cross", "table3"])
def test_stages_name_what_they_read_so_processes_can_share_an_out(tmp_path, table):
    """Each training needs the world and its own split's teacher, each scoring its own training:
    what lets two `sckd reproduce` processes on one OUT run different stages side by side."""
    from sckd.workflows.pipeline import Pipeline
    from sckd.workflows.reproduce import Reproduction

    rep = Reproduction(tmp_path / "out", table, None)
    stages = rep.stages()
    Pipeline(tmp_path / "out", stages)  # needs name earlier stages only
    reads = {j.key: [k for k in (j.teacher, j.init_from) if k] for j in load_table(table).jobs}
    for s in stages:
        if s.name == "world":
            assert s.needs == []
            continue
        fold, _, rest = s.name.rpartition("fold")[2].partition("-") if s.name.startswith("fold") else ("", "", s.name)
        prefix = f"fold{fold}-" if fold else ""
        kind, key = rest.split("-", 1)
        if kind == "train":
            want = ["world"] + [f"{prefix}train-{k}" for k in reads[key]]
        else:
            want = [f"{prefix}train-{key.split('@')[0]}"]
        assert s.needs == want, (s.name, s.needs)


ASTYX_TABLES = [t for t in sorted(p.stem for p in (CONFIG_ROOT / "reproduce").glob("*.yaml"))
                if load_table(t).family == "astyx"]


@pytest.mark.parametrize("table", ASTYX_TABLES)
def test_astyx_tables_name_experiments_and_students_match_their_teacher(table):
    """Every job of the Astyx tables loads with its overrides; exactly the jobs given a teacher
    distil, from a job trained before them, and see radar only; a student's grid (range, radar
    pillars) and the teacher config it names equal its teacher job's (a CPU teacher's maps do not
    meet a paper-size student's)."""
    spec = load_table(table)
    assert {"published", "published_paper", "recipe"} <= set(ASTYX_TABLES)
    jobs = {j.key: j for j in spec.jobs}
    exps = {j.key: load_experiment(f"experiments/astyx/{j.experiment}", j.overrides) for j in spec.jobs}
    for j in spec.jobs:
        exp = exps[j.key]
        assert (exp.distill is not None) == (j.teacher is not None), j.key
        for g in spec.gains:
            assert set(g) <= set(jobs)
        if j.teacher is None:
            continue
        t = exps[j.teacher]
        assert jobs[j.teacher].teacher is None and spec.jobs.index(jobs[j.teacher]) < spec.jobs.index(j)
        assert exp.model.encoders.keys() == {"radar"}
        assert exp.dataset.point_cloud_range == t.dataset.point_cloud_range, j.key
        assert exp.model.encoders["radar"].voxel_size == t.model.encoders["radar"].voxel_size, j.key
        named = load_experiment(exp.distill.teacher.config) if exp.distill.teacher.config else t
        assert named.model.encoders["lidar"].voxel_size == t.model.encoders["lidar"].voxel_size, j.key


def test_a_student_names_its_teacher_jobs_exact_network():
    """The teacher config a student builds its teacher from has the very model section its
    teacher job trained (else the teacher loader warns and builds from the other file)."""
    for table in ASTYX_TABLES:
        spec = load_table(table)
        exps = {j.key: load_experiment(f"experiments/astyx/{j.experiment}", j.overrides) for j in spec.jobs}
        for j in spec.jobs:
            if j.teacher is None or not exps[j.key].distill.teacher.config:
                continue
            named = load_experiment(exps[j.key].distill.teacher.config)
            assert to_dict(named.model) == to_dict(exps[j.teacher].model), (table, j.key)


@pytest.mark.parametrize("table, keys", [
    ("astyx", {"teacher_s_e36", "baseline", "baseline_s"}),
    ("astyx_fine", {"teacher_s_e36_fine", "teacher_s_e60_fine", "teacher_s_e60_fade_fine", "baseline"})])
def test_keys_an_astyx_table_shares_with_the_recipe_train_the_same_config(table, keys):
    """`reproduce astyx` (and astyx_fine) is run in the recipe's OUT and reuses its runs by key:
    each shared key must mean the same experiment there (all but the experiment's name), from
    the same start."""
    tables = {t: load_table(t) for t in (table, "recipe")}
    jobs = {t: {j.key: j for j in s.jobs} for t, s in tables.items()}
    shared = set(jobs[table]) & set(jobs["recipe"])
    assert keys <= shared
    for key in shared:
        a, b = (jobs[t][key] for t in (table, "recipe"))
        ea, eb = (to_dict(load_experiment(f"experiments/astyx/{j.experiment}", j.overrides)) for j in (a, b))
        ea.pop("name"), eb.pop("name")
        assert ea == eb and a.init_from == b.init_from, key


def test_a_score_at_another_iou_is_an_empty_cell_for_a_run_carried_as_its_result(tmp_path):
    """Runs carried over as markers and results (`--save`) have no predictions to score again at
    IoU 0.7: their cell in such a column is empty ('-'), the rest of the table is there."""
    import json

    from helpers.astyx_tree import simple_frames, write_astyx

    from sckd.eval.result import KINDS, ClassAP, EvalResult
    from sckd.workflows.reproduce import Reproduction

    root = write_astyx(tmp_path / "astyx", simple_frames(4))
    out = tmp_path / "out"
    rep = Reproduction(out, "astyx", str(root))
    assert any(c.iou == 0.7 for c in rep.spec.columns)
    per = {"Car": ClassAP(dict.fromkeys(KINDS, 40.0), dict.fromkeys(KINDS, 20.0), 3)}  # R11, R40
    regions = ["entire_area", "range_0-30", "range_30-50", "range_50-80"]
    for js in rep.fold_sets:
        js.result_file("baseline").parent.mkdir(parents=True, exist_ok=True)
        js.result_file("baseline").write_text(json.dumps(EvalResult(["Car"], dict.fromkeys(regions, per), 1, 1)
                                                         .to_official_json()))
    results = rep.fold_results()
    assert all("baseline" in r and "baseline@iou0.7" not in r for r in results)
    md = rep.tables()[1]
    row = next(line for line in md.splitlines() if line.startswith("| baseline (radar, GT) |"))
    cells = [c.strip() for c in row.strip(" |").split("|")[1:]]
    assert cells == ["40.00 ± 0.00"] * 2 + ["20.00 ± 0.00"] * 2 + ["40.00 ± 0.00"] * 3 + ["-"]


def test_recipe_second_cycle_starts_from_its_split_s_first_cycle(tmp_path, monkeypatch):
    """A job's ``init_from`` names a job listed before it, and its training stage on each split
    waits for that job's training on the same split, and reads its checkpoint."""
    from dataclasses import replace

    from helpers.astyx_tree import simple_frames, write_astyx

    from sckd.workflows.reproduce import Reproduction

    monkeypatch.setenv("SCKD_CACHE", str(tmp_path / "cache"))
    spec = load_table("recipe")
    jobs = {j.key: j for j in spec.jobs}
    second = jobs["teacher_s_e60_fine"]
    assert second.init_from == "teacher_s_e36_fine" and second.experiment == jobs["teacher_s_e36_fine"].experiment
    rep = Reproduction(tmp_path / "out", "recipe", str(write_astyx(tmp_path / "astyx", simple_frames(30))),
                       ["dataset.astyx.block_frames=3"])
    needs = {s.name: s.needs for s in rep.stages()}
    for k, js in enumerate(rep.fold_sets):
        assert needs[f"fold{k}-train-teacher_s_e60_fine"] == [f"fold{k}-train-teacher_s_e36_fine"]
        exp = js.experiment(js.job("teacher_s_e60_fine"))
        assert exp.train.init_from == str(tmp_path / "out" / f"fold{k}" / "checkpoints" / "teacher_s_e36_fine.pt")
        # The fade row: the same start, the same network, ground-truth pasting off for 6 epochs.
        assert needs[f"fold{k}-train-teacher_s_fade_fine"] == [f"fold{k}-train-teacher_s_e36_fine"]
        first, fade = js.experiment(js.job("teacher_s_e36_fine")), js.experiment(js.job("teacher_s_fade_fine"))
        assert fade.train.init_from == exp.train.init_from
        assert first.augment.gt_sampling.enabled and not fade.augment.gt_sampling.enabled
        assert (fade.train.epochs, fade.train.lr, first.train.lr) == (6, 0.001, 0.01)
        assert fade.model == first.model
        # The fade step again, after the second cycle: it waits for and starts from that cycle.
        assert needs[f"fold{k}-train-teacher_s_e60_fade_fine"] == [f"fold{k}-train-teacher_s_e60_fine"]
        late = js.experiment(js.job("teacher_s_e60_fade_fine"))
        assert late.train.init_from == str(tmp_path / "out" / f"fold{k}" / "checkpoints" / "teacher_s_e60_fine.pt")
        assert (late.augment, late.train.epochs, late.train.lr, late.model) == (fade.augment, 6, 0.001, fade.model)
    bad = replace(spec, jobs=[replace(second, init_from="teacher_s_e60_fine"), *spec.jobs])
    with pytest.raises(SckdError, match=r"jobs.teacher_s_e60_fine.init_from': 'teacher_s_e60_fine' must name a job "
                                        r"listed before it"):
        bad.validate("reproduce")
