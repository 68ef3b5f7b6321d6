"""The main job in one call: synthetic world -> teacher, GT-only radar baseline and SCKD student
-> VoD metric -> report. Every stage is resumable (:mod:`sckd.workflows.pipeline`).

Output folder::

    world/                     the synthetic VoD-layout world (train / val / unlabeled)
    runs/{teacher,baseline,student}/   run folders (config.yaml, train.log, tb/, checkpoints/)
    checkpoints/{teacher,baseline,student}.pt   final checkpoints (the student: a plain detector)
    predictions/<model>/       KITTI prediction files of the val split
    results/<model>.json       the metric (official key names)
    report.md, curves_*.png, bev_*.png
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sckd.config import from_dict, load_yaml_tree, to_dict
from sckd.errors import SckdError
from sckd.report.plots import plot_training_curves
from sckd.report.tables import ModelScores, all_finite, fmt_duration, gain, gt_counts
from sckd.workflows.jobs import DataSource, JobSet, ModelJob
from sckd.workflows.pipeline import Pipeline, PipelineResult, Stage

ROLES = ("teacher", "baseline", "student")
LABELS = {"teacher": "teacher (LiDAR+radar)", "baseline": "baseline (radar, GT)",
          "student": "SCKD student (radar)"}
SETTINGS = "demo_settings.json"


@dataclass
class DemoWorld:
    frames: int = 600
    seed: int = 0
    workers: int = 2
    synth: list[str] = field(default_factory=list)
    """``--set``-style overrides of the synth config (``synth.sequence.frames_per_sequence=20``)."""

    def validate(self, path: str) -> None:
        if self.frames < 1 or self.workers < 1:
            raise SckdError(f"config key '{path}.frames' / '{path}.workers': must be at least 1")


@dataclass
class DemoModel:
    config: str
    overrides: list[str] = field(default_factory=list)


@dataclass
class DemoConfig:
    world: DemoWorld
    teacher: DemoModel
    baseline: DemoModel
    student: DemoModel
    train_overrides: list[str] = field(default_factory=list)
    """Overrides for all three trainings (e.g. ``train.epochs=2``)."""
    bev_frames: int = 3
    bev_score: float = 0.3
    throughput: dict[str, float] = field(default_factory=dict)
    """Frames/s on the reference machine per stage kind (synth, teacher, baseline, student,
    eval); only for time estimates."""


def load_demo_config(name: str, overrides: list[str] = ()) -> DemoConfig:
    from sckd.config import apply_overrides

    raw = apply_overrides(load_yaml_tree(name), list(overrides))
    if "demo" not in raw:
        raise SckdError(f"{name}: config has no 'demo' section")
    return from_dict(DemoConfig, raw["demo"], "demo")


def split_sizes(w: DemoWorld) -> dict[str, int]:
    """Frames per split of the world ``w`` describes (known before it is made)."""
    from sckd.data.synth import load_synth_config
    from sckd.data.synth.world import plan_sequences

    plans = plan_sequences(load_synth_config(overrides=w.synth), w.frames, w.seed)
    out: dict[str, int] = {}
    for p in plans:
        out[p.split] = out.get(p.split, 0) + p.n_frames
    return out


def world_stage(out: Path, w: DemoWorld, estimate_s: float = 0.0, say=print) -> Stage:
    """Make the synthetic world in ``out/world`` (written to ``world.partial`` first, renamed
    when complete, so a cut-off world is never taken for a finished one)."""
    world = out / "world"

    def run() -> dict[str, Any]:
        from tqdm import tqdm

        from sckd.data.synth import load_synth_config, synthesize

        partial = out / "world.partial"
        if partial.exists():
            shutil.rmtree(partial)  # cut off earlier: start the world again
        with tqdm(total=w.frames, unit="frame", desc="      synth", leave=False) as bar:
            rep = synthesize(partial, w.frames, w.seed, load_synth_config(overrides=w.synth),
                             workers=w.workers, progress=bar.update)
        partial.rename(world)
        sizes = {k: len(v) for k, v in rep.splits.items()}
        say(f"      {w.frames} frames ({', '.join(f'{k} {n}' for k, n in sizes.items())}), "
            f"{rep.frames_per_second:.1f} frames/s")
        return {"splits": sizes, "frames_per_s": rep.frames_per_second}

    return Stage("world", f"synthetic world: {w.frames} frames -> {world}", run,
                 [world / "synth_config.yaml"], estimate_s)


class Demo:
    def __init__(self, out: Path, cfg: DemoConfig, say=print) -> None:
        self.out, self.cfg, self.say = Path(out), cfg, say
        self.world = self.out / "world"
        jobs = [ModelJob("teacher", LABELS["teacher"], cfg.teacher.config, cfg.teacher.overrides, kind="teacher"),
                ModelJob("baseline", LABELS["baseline"], cfg.baseline.config, cfg.baseline.overrides),
                ModelJob("student", LABELS["student"], cfg.student.config, cfg.student.overrides,
                         teacher="teacher", kind="student")]
        self.jobs = JobSet(self.out, jobs, DataSource(root=str(self.world)), common_overrides=cfg.train_overrides)

    # ---------------------------------------------------------------------------- set-up

    def check_settings(self) -> None:
        """Refuse to continue a folder made with other settings (its world / runs would not match)."""
        mine = to_dict(self.cfg)
        p = self.out / SETTINGS
        if p.is_file():
            try:
                theirs = json.loads(p.read_text())
            except (OSError, json.JSONDecodeError):
                theirs = None
            if theirs != mine:
                raise SckdError(f"{p}: this folder holds a demo run with other settings (e.g. --quick "
                                "or not); use another --out or delete the folder")
            return
        if self.out.exists() and any(self.out.iterdir()):
            raise SckdError(f"{self.out}: folder is not empty and holds no demo run; use an empty or new --out")
        self.out.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(mine, indent=1))

    def estimates(self) -> dict[str, float]:
        """Seconds per stage on the reference machine (frames x epochs / throughput)."""
        tp, sizes = self.cfg.throughput, split_sizes(self.cfg.world)
        est = {"world": self.cfg.world.frames / tp["synth"] if tp.get("synth") else 0.0}
        for job in self.jobs.jobs:
            est[f"train-{job.key}"] = self.jobs.train_estimate(job, sizes, tp)
            est[f"eval-{job.key}"] = self.jobs.eval_estimate(sizes, tp)
        return est

    # ---------------------------------------------------------------------------- stages

    def figures_stage(self) -> Stage:
        def run() -> dict[str, Any]:
            pngs = self.figures()
            return {"pngs": [p.name for p in pngs]}

        return Stage("figures", "report figures: training curves, bird's-eye views", run, [], 10.0)

    def figures(self) -> list[Path]:
        """Training curves of the runs and bird's-eye panels of the same validation frames."""
        pngs = plot_training_curves([self.jobs.curve_run(r, LABELS[r]) for r in ROLES], self.out)
        models = [(r, LABELS[r], r == "teacher") for r in ROLES]
        return pngs + self.jobs.bev_panels(models, self.cfg.bev_frames, self.cfg.bev_score, self.out)

    def stages(self) -> list[Stage]:
        """Each stage names what it reads (``needs``), so processes sharing ``--out`` run the
        baseline beside the teacher: only the student waits for the teacher."""
        est = self.estimates()
        stages = [world_stage(self.out, self.cfg.world, est["world"], self.say)]
        for j in self.jobs.jobs:
            st = self.jobs.train_stage(j, est[f"train-{j.key}"])
            st.needs = ["world"] + ([f"train-{j.teacher}"] if j.teacher else [])
            stages.append(st)
        for j in self.jobs.jobs:
            st = self.jobs.evaluate_stage(j, est[f"eval-{j.key}"])
            st.needs = ["world", f"train-{j.key}"]
            stages.append(st)
        return stages + [self.figures_stage()]  # the figures read every run

    def run(self) -> PipelineResult:
        self.check_settings()
        self.jobs.validate()
        return Pipeline(self.out, self.stages(), self.say).run()

    # --------------------------------------------------------------------------- results

    def scores(self) -> dict[str, ModelScores]:
        classes = self.classes()
        return {r: ModelScores.from_result(LABELS[r], self.jobs.read_result(r), classes) for r in ROLES}

    def classes(self) -> list[str]:
        return list(self.jobs.experiment(self.jobs.job("baseline")).eval.classes)

    def table_rows(self) -> tuple[list[ModelScores], list[ModelScores]]:
        s = self.scores()
        rows = [s[r] for r in ROLES]
        gains = [gain(s["student"], s["baseline"], "student - baseline")]
        if not all_finite(rows):
            raise SckdError(f"{self.out / 'results'}: the metric gave non-finite numbers")
        return rows, gains

    # ---------------------------------------------------------------------------- report

    def summary_notes(self, result: PipelineResult) -> list[str]:
        s = self.scores()
        t, b, st = (s[r].ap["entire_area"]["mAP"] for r in ROLES)
        dt, db, dst = (s[r].ap["roi"]["mAP"] for r in ROLES)
        def above(a: float, b: float) -> str:  # on the numbers as printed (2 decimals)
            return "above" if round(a, 2) > round(b, 2) else "NOT above"

        notes = [f"SCKD student vs. GT-only radar baseline: {st - b:+.2f} mAP (EAA), {dst - db:+.2f} mAP (DC); "
                 f"the student is {above(st, b)} the baseline in EAA mAP and the teacher "
                 f"({t:.2f} EAA / {dt:.2f} DC) is {above(t, max(st, b))} both.",
                 "The student sees radar points only and never a label: it learns from the frozen "
                 "LiDAR + radar teacher (pseudo-labels + feature distillation) on the train and "
                 "unlabeled frames. The baseline is the same radar network trained on the train labels."]
        counts = gt_counts(self.jobs.read_result("baseline"), self.classes())
        if counts:
            notes.append(counts)
        total = result.total_stage_seconds
        notes.append(f"Wall time {fmt_duration(total)} over all stages"
                     + (f" ({fmt_duration(result.seconds)} in the last invocation)"
                        if abs(result.seconds - total) > 5 else "")
                     + f"; peak memory {result.peak_rss_mb:.0f} MiB (main process), largest child "
                     f"process {result.peak_child_rss_mb:.0f} MiB.")
        return notes

    def write_report(self, result: PipelineResult) -> Path:
        from sckd.report.tables import (
            ReportInputs,
            format_markdown_table,
            write_markdown_report,
        )

        rows, gains = self.table_rows()
        classes = self.classes()
        info = {r.name: r.info for r in result.records}
        sizes = info.get("world", {}).get("splits", {})
        w = self.cfg.world
        intro = (f"A synthetic radar + LiDAR world ({w.frames} frames, seed {w.seed}: "
                 + ", ".join(f"{k} {n}" for k, n in sizes.items())
                 + " frames) in the View-of-Delft layout; a LiDAR + radar teacher and a radar-only "
                 "baseline trained on the train split's labels, and the SCKD student distilled from "
                 "the frozen teacher without labels. All numbers below come from this run.")
        pngs = [self.out / n for n in info.get("figures", {}).get("pngs", [])]
        configs = {}
        for r in ROLES:
            p = self.jobs.run_dir(r) / "config.yaml"
            if p.is_file():
                configs[f"{LABELS[r]}: {getattr(self.cfg, r).config}"] = p.read_text()
        ck = {r: self.jobs.checkpoint(r).relative_to(self.out) for r in ROLES}
        extra = ["## Go on from here", "",
                 f"The three checkpoints are in `{self.out / 'checkpoints'}` "
                 f"(`{ck['teacher']}`, `{ck['baseline']}`, `{ck['student']}`; the student is a plain "
                 "radar detector, no teacher needed):", "", "```bash",
                 f"sckd predict {self.out / ck['student']} --data {self.world} --split val --out /tmp/student_preds",
                 f"sckd eval --data datasets/synth --root {self.world} --split val --pred /tmp/student_preds",
                 f"sckd train {self.cfg.student.config} --data {self.world} \\",
                 f"     --set distill.teacher.checkpoint={self.out / ck['teacher']}",
                 "```", ""]
        timings = [(r.name, r.seconds) for r in result.records]
        return write_markdown_report(self.out / "report.md", ReportInputs(
            title="SCKD demo: teacher, GT-only radar baseline and SCKD student on a synthetic world",
            intro=intro, table_md=format_markdown_table(rows, classes, gains),
            notes=self.summary_notes(result), configs=configs, curve_pngs=[p for p in pngs if p.name.startswith("curves")],
            bev_pngs=[p for p in pngs if p.name.startswith("bev")], timings=timings, extra=extra))
