"""``sckd demo``: the resumable stage runner, the result table, and the whole job end to end
(``sckd demo --quick``, interrupted once and continued)."""

import json
import math
import multiprocessing
import re
import time
from dataclasses import replace

import numpy as np
import pytest

from sckd.errors import SckdError
from sckd.eval.result import KINDS, ClassAP, EvalResult
from sckd.report.plots import pick_frames
from sckd.report.tables import (
    ModelScores,
    format_markdown_table,
    format_text_table,
    gain,
    gt_counts,
)
from sckd.workflows.pipeline import Pipeline, Stage

# ------------------------------------------------------------------------------ stage runner


def _stage(name, out_file, calls, estimate=0.0, group=""):
    def run():
        calls.append(name)
        out_file.write_text(name)
        return {"wrote": out_file.name}
    return Stage(name, f"make {name}", run, [out_file], estimate, group)


def test_pipeline_skips_done_stages_and_reruns_lost_outputs(tmp_path):
    calls, lines = [], []
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    res = Pipeline(tmp_path, [_stage("a", a, calls), _stage("b", b, calls)], lines.append).run()
    assert calls == ["a", "b"] and [r.skipped for r in res.records] == [False, False]
    assert res.record("a").info == {"wrote": "a.txt"}
    # rerun: nothing to do
    res = Pipeline(tmp_path, [_stage("a", a, calls), _stage("b", b, calls)], lines.append).run()
    assert calls == ["a", "b"] and all(r.skipped for r in res.records)
    assert res.record("b").info == {"wrote": "b.txt"}  # kept from the marker
    assert any("done earlier" in ln for ln in lines)
    # an output that disappeared makes its stage run again, the other stays done
    b.unlink()
    Pipeline(tmp_path, [_stage("a", a, calls), _stage("b", b, calls)], lines.append).run()
    assert calls == ["a", "b", "b"]


def test_pipeline_does_not_rerun_a_stage_that_only_done_stages_read(tmp_path):
    """A training whose checkpoint is gone is not trained again while its scoring is done (an OUT
    carried to another machine as markers and results); once a stage that reads it has to run,
    it runs first."""
    calls, lines = [], []
    a, b, c = (tmp_path / f"{x}.txt" for x in "abc")

    def stages(with_c=False):
        out = [replace(_stage("a", a, calls), needs=[]), replace(_stage("b", b, calls), needs=["a"])]
        return out + ([replace(_stage("c", c, calls), needs=["a"])] if with_c else [])

    Pipeline(tmp_path, stages(), lines.append).run()
    a.unlink()
    res = Pipeline(tmp_path, stages(), lines.append).run()
    assert calls == ["a", "b"] and res.record("a").skipped and res.record("a").info == {"wrote": "a.txt"}
    assert any("not needed" in ln for ln in lines)
    assert [r.name for r in Pipeline(tmp_path, stages()).finished().records] == ["a", "b"]
    Pipeline(tmp_path, stages(with_c=True), lines.append).run()  # a new reader of a
    assert calls == ["a", "b", "a", "c"]
    a.unlink()
    b.unlink()
    Pipeline(tmp_path, stages(with_c=True), lines.append).run()  # b lost: a is needed again
    assert calls == ["a", "b", "a", "c", "a", "b"]


def test_pipeline_two_runners_share_one_out_and_run_each_stage_once(tmp_path):
    """A second runner (another ``sckd reproduce`` in the same OUT) waits on the stage the
    first is running, then reuses it; with no lock both would train it."""
    import threading

    started, release = threading.Event(), threading.Event()
    calls, lines2 = [], []
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"

    def slow_a():
        calls.append("a")
        started.set()
        assert release.wait(30)
        a.write_text("a")

    def say2(line):
        lines2.append(line)
        if "another process is running it" in line:
            release.set()  # the second runner is blocked on the lock: let the first finish

    first = [Stage("a", "make a", slow_a, [a]), _stage("b", b, calls)]
    second = [Stage("a", "make a", slow_a, [a]), _stage("b", b, calls)]
    t1 = threading.Thread(target=lambda: Pipeline(tmp_path, first, lambda s: None).run())
    t1.start()
    assert started.wait(30)
    res2 = Pipeline(tmp_path, second, say2).run()
    t1.join(30)
    assert calls.count("a") == 1, calls
    assert res2.record("a").skipped
    assert any("done by another process" in line for line in lines2), lines2


def test_pipeline_runner_moves_past_a_locked_stage_to_one_that_does_not_need_it(tmp_path):
    """Two runners of one job share the work: while the first trains ``a``, the second runs the
    independent ``b`` instead of waiting, then waits for ``a`` before ``c``, which reads it."""
    import threading

    started, release = threading.Event(), threading.Event()
    calls, lines2 = [], []
    a, b, c = (tmp_path / f"{x}.txt" for x in "abc")

    def slow_a():
        calls.append(("a", threading.current_thread().name))
        started.set()
        assert release.wait(30)
        a.write_text("a")

    def make_b():
        calls.append(("b", threading.current_thread().name, release.is_set()))
        b.write_text("b")

    def make_c():
        assert a.read_text() == "a"
        calls.append(("c", threading.current_thread().name))
        c.write_text("c")

    def say2(line):
        lines2.append(line)
        if "another process is running it" in line:
            release.set()

    def stages():
        return [Stage("a", "a", slow_a, [a], needs=[]), Stage("b", "b", make_b, [b], needs=[]),
                Stage("c", "c", make_c, [c], needs=["a"])]

    t1 = threading.Thread(target=lambda: Pipeline(tmp_path, stages(), lambda s: None).run(), name="first")
    t1.start()
    assert started.wait(30)
    res2 = Pipeline(tmp_path, stages(), say2).run()
    t1.join(30)
    assert [x[0] for x in calls].count("a") == 1 and [x[0] for x in calls].count("c") == 1, calls
    assert ("b", "MainThread", False) in calls  # b ran in the second runner while a was still held
    assert [r.name for r in res2.records] == ["a", "b", "c"] and res2.record("a").skipped
    with pytest.raises(ValueError, match="not an earlier stage"):
        Pipeline(tmp_path, [Stage("x", "x", make_b, [b], needs=["y"]), Stage("y", "y", make_b, [b])])


def test_pipeline_interrupted_stage_runs_again_and_earlier_ones_do_not(tmp_path):
    calls = []
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"

    def broken():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Pipeline(tmp_path, [_stage("a", a, calls), Stage("b", "b", broken, [b])], lambda s: None).run()
    assert not (tmp_path / ".stages" / "b.json").exists()
    Pipeline(tmp_path, [_stage("a", a, calls), _stage("b", b, calls)], lambda s: None).run()
    assert calls == ["a", "b"]


def _slow_stage_pipeline(out, heartbeat_s):
    """A pipeline whose one stage runs for a minute: killed from outside in the test below."""
    Pipeline(out, [Stage("t", "train", lambda: time.sleep(60), [out / "t.txt"])], lambda s: None,
             heartbeat_s=heartbeat_s).run()


def _spent(out, name):
    p = out / ".stages" / f"{name}.spent.json"
    return json.loads(p.read_text())["seconds"] if p.is_file() else None


def test_pipeline_stage_time_survives_a_hard_kill(tmp_path):
    """A stage killed with SIGKILL (a session's end) and finished by a later invocation is
    reported at the time of both attempts, not of the last one only."""
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_slow_stage_pipeline, args=(tmp_path, 0.05))
    child.start()
    deadline = time.monotonic() + 30
    while (_spent(tmp_path, "t") or 0.0) < 0.5 and time.monotonic() < deadline:
        time.sleep(0.05)
    child.kill()
    child.join()
    first = _spent(tmp_path, "t")
    assert first is not None and first >= 0.5
    assert not (tmp_path / ".stages" / "t.json").exists()

    lines = []
    out = tmp_path / "t.txt"
    res = Pipeline(tmp_path, [Stage("t", "train", lambda: out.write_text("x") and None, [out])], lines.append).run()
    total = json.loads((tmp_path / ".stages" / "t.json").read_text())["seconds"]
    assert first <= total < first + 5.0  # the second attempt took milliseconds
    assert res.record("t").seconds == pytest.approx(total)
    assert _spent(tmp_path, "t") is None  # the marker holds the total now
    assert any("with the earlier, cut-off attempts" in ln for ln in lines)
    # a rerun reads the total from the marker; no time is added twice
    res = Pipeline(tmp_path, [Stage("t", "train", lambda: None, [out])], lines.append).run()
    assert res.record("t").skipped and res.record("t").seconds == pytest.approx(total)


def test_pipeline_stage_stopped_by_ctrl_c_keeps_its_time(tmp_path):
    def interrupted():
        time.sleep(0.2)
        raise KeyboardInterrupt

    out = tmp_path / "x.txt"
    with pytest.raises(KeyboardInterrupt):  # heartbeat far beyond the stage: written on the way out
        Pipeline(tmp_path, [Stage("x", "x", interrupted, [out])], lambda s: None, heartbeat_s=3600).run()
    first = _spent(tmp_path, "x")
    assert first is not None and first >= 0.2
    with pytest.raises(KeyboardInterrupt):  # a second cut attempt adds to the first
        Pipeline(tmp_path, [Stage("x", "x", interrupted, [out])], lambda s: None, heartbeat_s=3600).run()
    assert _spent(tmp_path, "x") >= first + 0.2
    (tmp_path / ".stages" / "x.spent.json").write_text("{torn")  # unreadable: counted as 0, no error
    Pipeline(tmp_path, [Stage("x", "x", lambda: out.write_text("x") and None, [out])], lambda s: None).run()
    assert json.loads((tmp_path / ".stages" / "x.json").read_text())["seconds"] < 0.2


def test_pipeline_stage_without_its_output_is_an_error(tmp_path):
    st = Stage("x", "x", lambda: None, [tmp_path / "never.txt"])
    with pytest.raises(SckdError, match="never.txt"):
        Pipeline(tmp_path, [st], lambda s: None).run()


def test_pipeline_eta_rescales_within_a_group(tmp_path, monkeypatch):
    """Stage 'a' is estimated at 10 s and takes 20 s (clock mocked): the next stage of the same
    group is announced at twice its estimate, a stage of another group unscaled."""
    import sckd.workflows.pipeline as pl

    clock = iter([0.0, 100.0, 120.0] + [200.0] * 20)
    monkeypatch.setattr(pl.time, "perf_counter", lambda: next(clock))
    lines, calls = [], []
    stages = [_stage("a", tmp_path / "a", calls, 10.0, "train"), _stage("b", tmp_path / "b", calls, 30.0, "train"),
              _stage("c", tmp_path / "c", calls, 30.0, "eval")]
    Pipeline(tmp_path, stages, lines.append).run()
    heads = [ln for ln in lines if ln.startswith("[")]
    assert "about 10s; 1m10s left in all" in heads[0]
    assert "about 1m00s; 1m30s left in all" in heads[1]  # 30 s x 2, plus c unscaled
    assert "about 30s; 30s left in all" in heads[2]


# ------------------------------------------------------------------------------ result table

CLASSES = ["Car", "Pedestrian", "Cyclist"]


def _result(aps, num_gt=None, classes=CLASSES):
    """An EvalResult with 3D AP|R11 ``aps[region][class]`` (other kinds 0) and GT counts."""
    regions = {}
    for region, per_class in aps.items():
        regions[region] = {c: ClassAP(r11={k: (per_class[c] if k == "3d" else 0.0) for k in KINDS},
                                      r40=dict.fromkeys(KINDS, 0.0),
                                      num_gt=(num_gt or {}).get(region, {}).get(c, 1)) for c in classes}
    return EvalResult(list(classes), regions, 10, 20)


def _official(car, ped, cyc, dc_shift):
    ea = {"Car": car, "Pedestrian": ped, "Cyclist": cyc}
    return _result({"entire_area": ea, "roi": {k: v + dc_shift for k, v in ea.items()}})


def test_scores_table_and_gain_by_hand():
    base = ModelScores.from_result("baseline", _official(30.0, 20.0, 40.0, 10.0), CLASSES)
    stud = ModelScores.from_result("student", _official(33.0, 26.0, 42.0, 12.0), CLASSES)
    assert base.ap["entire_area"]["mAP"] == pytest.approx(30.0)
    assert base.ap["roi"]["Car"] == pytest.approx(40.0)
    g = gain(stud, base, "student - baseline")
    # EAA: (33 + 26 + 42) / 3 - 30 = 3.6667; DC shifts 12 vs 10 -> +2 more
    assert g.ap["entire_area"]["mAP"] == pytest.approx(11 / 3)
    assert g.ap["roi"]["mAP"] == pytest.approx(11 / 3 + 2)
    text = format_text_table([base, stud], CLASSES, [g])
    assert re.search(r"student - baseline\s*\|\s*\+3\.00\s+\+6\.00\s+\+2\.00\s+\+3\.67\|\s*\+5\.00", text)
    md = format_markdown_table([base, stud], CLASSES, [g])
    assert "| baseline | 30.00 | 20.00 | 40.00 | 30.00 | 40.00 | 30.00 | 50.00 | 40.00 |" in md
    assert "**+3.67**" in md and "**+5.67**" in md


def test_missing_metric_keys_become_nan_not_zero():
    s = ModelScores.from_result("x", _result({"entire_area": {"Car": 1.0}}, classes=["Car"]), CLASSES)
    assert s.ap["entire_area"]["Car"] == 1.0 and math.isnan(s.ap["entire_area"]["Pedestrian"])
    assert math.isnan(s.ap["roi"]["mAP"])


def test_ground_truth_counts_name_the_empty_cells():
    n = {"entire_area": {"Car": 422, "Pedestrian": 339, "Cyclist": 331}, "roi": {"Car": 71, "Pedestrian": 0, "Cyclist": 92}}
    line = gt_counts(_result({r: dict.fromkeys(CLASSES, 1.0) for r in n}, n), CLASSES)
    assert "EAA Car 422 / Ped 339 / Cyc 331; DC Car 71 / Ped 0 / Cyc 92." in line
    assert "DC Ped: no object" in line and "EAA Ped:" not in line
    full = _result({r: dict.fromkeys(CLASSES, 1.0) for r in n}, {r: dict.fromkeys(CLASSES, 5) for r in n})
    assert "no object" not in gt_counts(full, CLASSES)
    assert gt_counts(_result({"range_0-30": dict.fromkeys(CLASSES, 1.0)}), CLASSES) == ""


def test_result_json_round_trip():
    res = _result({"entire_area": {"Car": 31.5, "Pedestrian": 20.25, "Cyclist": math.nan}, "roi": dict.fromkeys(CLASSES, 7.0)},
                  {"entire_area": {"Car": 3, "Pedestrian": 0, "Cyclist": 9}})
    res.missing_predictions = ["00007"]
    back = EvalResult.from_official_json(json.loads(json.dumps(res.to_official_json())))
    assert back.classes == res.classes and back.missing_predictions == ["00007"]
    assert back.regions["entire_area"]["Pedestrian"] == res.regions["entire_area"]["Pedestrian"]
    assert math.isnan(back.ap("entire_area", "Cyclist")) and back.regions["entire_area"]["Cyclist"].num_gt == 9
    assert back.value("roi", "mAP_3d") == pytest.approx(7.0) and back.value("roi", "Truck_3d_all") is None
    with pytest.raises(SckdError, match="r.json: not a metric result written by sckd"):
        EvalResult.from_official_json({"entire_area": {"Car_3d_all": 1.0}}, "r.json")


def test_pick_frames_spreads_over_the_split_and_prefers_busy_frames():
    counts = [("a", np.array([0])), ("b", np.array([0, 1, 2])), ("c", np.array([0, 0, 0, 0])),
              ("d", np.array([], np.int64)), ("e", np.array([1, 1])), ("f", np.array([2, -1, -1, -1]))]
    # halves [a b c] and [d e f]: most classes present wins (b), then most objects (e: 2 > f: 1)
    assert pick_frames(counts, 2, 3) == ["b", "e"]
    assert pick_frames(counts, 0, 3) == []
    assert pick_frames(counts[:1], 5, 3) == ["a"]


# ------------------------------------------------------------------------------ end to end

def _table_numbers(report: str, label: str) -> list[float]:
    line = next(ln for ln in report.splitlines() if ln.startswith(f"| {label} |"))
    return [float(c.strip().strip("*")) for c in line.strip("|").split("|")[1:]]


@pytest.mark.slow
def test_quick_demo_end_to_end_with_an_interruption(tmp_path, cli, monkeypatch, capsys):
    """``sckd demo --quick`` cut off while the baseline trains, then rerun: the world and the
    teacher are reused, the job completes, and the report holds finite numbers that agree with
    the result files and with ``sckd eval`` on the written predictions."""
    import sckd.workflows.jobs as jobs
    from sckd.engine import checkpoint as ck

    out = tmp_path / "demo"
    real_train_stage = jobs.JobSet.train_stage

    def cut_off(self, job, estimate_s=0.0):
        stage = real_train_stage(self, job, estimate_s)
        if job.key == "baseline":
            def interrupted():
                raise KeyboardInterrupt
            stage.run = interrupted
        return stage

    monkeypatch.setattr(jobs.JobSet, "train_stage", cut_off)
    assert cli("demo", "--quick", "--out", out) == 130
    assert (out / "checkpoints" / "teacher.pt").is_file() and not (out / "checkpoints" / "baseline.pt").exists()
    teacher_bytes = (out / "checkpoints" / "teacher.pt").read_bytes()
    monkeypatch.setattr(jobs.JobSet, "train_stage", real_train_stage)

    import sckd.data.synth as synth

    def no_synth(*a, **k):
        raise AssertionError("the world was made again")
    monkeypatch.setattr(synth, "synthesize", no_synth)
    capsys.readouterr()
    assert cli("demo", "--quick", "--out", out) == 0
    printed = capsys.readouterr().out
    assert printed.count("done earlier") == 2  # world + teacher
    assert (out / "checkpoints" / "teacher.pt").read_bytes() == teacher_bytes

    # checkpoints: plain detectors that predict / eval load; the student has no teacher inside
    for role in ("teacher", "baseline", "student"):
        c = ck.load_checkpoint(out / "checkpoints" / f"{role}.pt")
        assert c.config.get("distill") is None
        assert c.optimizer is None if role == "student" else c.optimizer is not None
    # the report: table, figures, configs
    report = (out / "report.md").read_text()
    for png in ("curves_loss.png", "curves_val_map.png"):
        assert (out / png).stat().st_size > 5000 and f"]({png})" in report
    bevs = sorted(out.glob("bev_*.png"))
    assert len(bevs) == 2 and all(f"]({p.name})" in report for p in bevs)
    assert "experiments/synth/teacher" in report and "```yaml" in report
    rows = {}
    for role, label in (("teacher", "teacher (LiDAR+radar)"), ("baseline", "baseline (radar, GT)"),
                        ("student", "SCKD student (radar)")):
        nums = _table_numbers(report, label)
        assert len(nums) == 8 and all(math.isfinite(v) and 0.0 <= v <= 100.0 for v in nums)
        res = json.loads((out / "results" / f"{role}.json").read_text())
        expect = [res[r][k] for r in ("entire_area", "roi")
                  for k in ("Car_3d_all", "Pedestrian_3d_all", "Cyclist_3d_all", "mAP_3d")]
        assert nums == pytest.approx(expect, abs=0.006)
        # mAP is the mean of the three classes
        assert nums[3] == pytest.approx(sum(nums[:3]) / 3, abs=0.02)
        rows[role] = nums
    gains = _table_numbers(report, "student - baseline")
    assert gains == pytest.approx([s - b for s, b in zip(rows["student"], rows["baseline"])], abs=0.011)
    assert "Wall time" in report and "peak memory" in report
    assert "Ground-truth objects in the validation split: EAA Car " in report
    # the student's row is what `sckd eval` says about its prediction files
    capsys.readouterr()
    assert cli("eval", "--data", "datasets/synth", "--root", out / "world", "--split", "val",
               "--pred", out / "predictions" / "student", "--json", tmp_path / "s.json") == 0
    again = json.loads((tmp_path / "s.json").read_text())
    assert again["entire_area"]["mAP_3d"] == pytest.approx(rows["student"][3], abs=0.006)
    # the teacher reads LiDAR: `sckd predict` on its checkpoint writes the demo's files, and
    # `sckd eval` on them gives the numbers of the report's teacher row
    assert cli("predict", out / "checkpoints" / "teacher.pt", out / "world", "--split", "val",
               "--out", tmp_path / "tp") == 0
    assert ({p.name: p.read_text() for p in (tmp_path / "tp").glob("*.txt")}
            == {p.name: p.read_text() for p in (out / "predictions" / "teacher").glob("*.txt")})
    assert cli("eval", "--data", out / "world", "--split", "val", "--pred", tmp_path / "tp",
               "--json", tmp_path / "t.json") == 0
    mine, demo = (json.loads(f.read_text()) for f in (tmp_path / "t.json", out / "results" / "teacher.json"))
    assert all(mine[r][k] == demo[r][k] for r in ("entire_area", "roi") for k in demo[r])


def test_demo_refuses_a_folder_made_with_other_settings(tmp_path, cli, capsys):
    out = tmp_path / "d"
    out.mkdir()
    (out / "demo_settings.json").write_text(json.dumps({"world": {"frames": 1}}))
    assert cli("demo", "--quick", "--out", out) == 2
    assert "other settings" in capsys.readouterr().err
    other = tmp_path / "busy"
    other.mkdir()
    (other / "thesis.tex").write_text("x")
    assert cli("demo", "--out", other) == 2
    assert "not empty" in capsys.readouterr().err


# ------------------------------------------------------------------------------ reproduce

@pytest.mark.parametrize("table", ["table1", "table3", "table4", "table5"])
@pytest.mark.parametrize("family", ["synth", "vod"])
def test_reproduce_tables_name_existing_experiments_with_matching_teachers(table, family, tmp_path):
    """Every job of every table resolves to an experiment of both families; exactly the jobs
    given a teacher are distillation runs, and their teacher is a detector job of the table."""
    from sckd.config import CONFIG_ROOT
    from sckd.experiment.config import load_experiment
    from sckd.workflows.table_spec import load_table

    spec = load_table(table)
    keys = {j.key: j for j in spec.jobs}
    for j in spec.jobs:
        exp = load_experiment(CONFIG_ROOT / "experiments" / family / f"{j.experiment}.yaml")
        assert (exp.distill is not None) == (j.teacher is not None), j.key
        if j.teacher is not None:
            assert keys[j.teacher].teacher is None
            assert spec.jobs.index(keys[j.teacher]) < spec.jobs.index(j)  # trained first
            assert exp.model.encoders.keys() == {"radar"}  # the student sees radar only
        if j.reference is not None:
            assert len(j.reference) == 2 and j.reference[0] < j.reference[1]  # EAA < DC in the paper


def test_reproduce_data_choice(tmp_path):
    from sckd.workflows.reproduce import choose_data

    assert choose_data(None).family == "synth" and choose_data(None).source is None
    world = tmp_path / "w"
    world.mkdir()
    (world / "synth_config.yaml").write_text("seed: 0\n")
    c = choose_data(str(world))
    assert (c.family, c.source.root) == ("synth", str(world.resolve()))
    vod = tmp_path / "vod"
    (vod / "lidar" / "training").mkdir(parents=True)
    assert choose_data(str(vod)).family == "vod"
    cfg = tmp_path / "my_vod.yaml"
    cfg.write_text(f"base: datasets/vod.yaml\ndataset: {{root: {vod}}}\n")
    c = choose_data(str(cfg))
    assert (c.family, c.source.config_file) == ("vod", str(cfg.resolve()))
    cfg.write_text("base: datasets/vod.yaml\n")
    with pytest.raises(SckdError, match="dataset.root"):
        choose_data(str(cfg))
    cfg.write_text("dataset: {name: kitti, root: /x}\n")
    with pytest.raises(SckdError, match="dataset.name"):
        choose_data(str(cfg))
