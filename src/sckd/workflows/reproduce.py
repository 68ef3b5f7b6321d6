"""``sckd reproduce``: train, evaluate and tabulate one of the SCKD paper's experiment sets.

A table spec (``configs/reproduce/table<N>.yaml``, :mod:`.table_spec`) lists jobs by experiment stem; they are
looked up under ``experiments/synth/`` (the default: a synthetic world made in ``OUT/world``
like the demo's, or an existing one) or ``experiments/vod/`` (the user's View-of-Delft, given
as a dataset config with its root, or as the root folder). Every stage is resumable; the
table goes to ``OUT/<table>.md`` / ``.txt`` / ``.json`` (named after the table, so sets that
share an OUT folder, as ``candidates`` does with ``study``, keep their own tables) and the terminal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from sckd.atomic import write_text_atomic
from sckd.config import CONFIG_ROOT, resolve_config_path
from sckd.data.resolve import resolve_dataset
from sckd.errors import SckdError
from sckd.eval.result import EvalResult
from sckd.report.folds import FoldColumn, format_fold_tables, mean_std_rows
from sckd.report.plots import plot_training_curves
from sckd.report.pseudo import format_pseudo_tables
from sckd.report.tables import (
    ModelScores,
    fmt_duration,
    format_markdown_table,
    format_text_table,
    gain,
)
from sckd.workflows.demo import DemoWorld, load_demo_config, split_sizes, world_stage
from sckd.workflows.jobs import (
    DataSource,
    JobSet,
    ModelJob,
    TransferTarget,
    read_result,
)
from sckd.workflows.pipeline import Pipeline, PipelineResult, Stage, stage_info
from sckd.workflows.table_spec import load_table


@dataclass
class DataChoice:
    family: str
    """``synth`` or ``vod``: which experiments/<family>/ configs run."""
    source: DataSource | None
    """None: make the synthetic world in OUT/world."""


def choose_data(data: str | None) -> DataChoice:
    """``None`` / ``synth``: a new synthetic world; a folder with ``synth_config.yaml``: that
    world; another folder: a View-of-Delft root; a YAML file: its ``dataset:`` section (the
    family from ``dataset.name``, with its ``root``)."""
    if data in (None, "synth"):
        return DataChoice("synth", None)
    p = Path(data).expanduser()
    ds = resolve_dataset(data)
    family = ds.name
    if not (CONFIG_ROOT / "experiments" / family).is_dir():
        raise SckdError(f"{data}: config key 'dataset.name' is '{family}'; experiment sets exist for "
                        f"{sorted(d.name for d in (CONFIG_ROOT / 'experiments').iterdir() if d.is_dir())}")
    if p.is_dir():
        return DataChoice(family, DataSource(root=ds.root))
    if not ds.root:
        raise SckdError(f"{data}: config key 'dataset.root' is empty (set it to your dataset folder)")
    path = str(p.resolve()) if p.is_file() else str(resolve_config_path(data))
    return DataChoice(family, DataSource(config_file=path))

class Reproduction:
    def __init__(self, out: Path, table: str, data: str | None, overrides: list[str] = (), say=print,
                 transfer: str | None = None) -> None:
        self.out, self.name, self.say = Path(out), table, say
        self.spec = load_table(table)
        self.choice = choose_data(data)
        self.transfer = self._transfer_targets(transfer, table) if transfer else None
        self.world: DemoWorld | None = None
        source = self.choice.source
        fam = self.choice.family
        if self.spec.family and fam != self.spec.family:
            raise SckdError(f"reproduce {table}: needs {self.spec.family} data (--data), got {fam}")
        self.spec = self.spec.for_family(fam, table)
        if source is None:
            self.world = load_demo_config("demo/default.yaml").world
            source = DataSource(root=str(self.out / "world"))
        jobs = []
        pl = self.spec.pseudo_labels
        for j in self.spec.jobs:
            exp = CONFIG_ROOT / "experiments" / fam / f"{j.experiment}.yaml"
            if not exp.is_file():
                raise SckdError(f"reproduce/{table}.yaml: experiment '{j.experiment}' has no config {exp}")
            kind = "student" if j.teacher else ("teacher" if "teacher" in j.experiment else "radar")
            name = str(exp.relative_to(CONFIG_ROOT).with_suffix(""))  # e.g. experiments/synth/teacher
            jobs.append(ModelJob(j.key, j.label, name, list(j.overrides), j.teacher, kind, j.init_from,
                                 sigma_from=j.teacher if j.sigma_from_teacher else None,
                                 min_precision=pl.min_precision if pl else 0.6))
        if self.spec.folds == 1:
            self.fold_sets = [JobSet(self.out, jobs, source, common_overrides=list(overrides))]
        else:  # one job set per split, in OUT/fold<k>, selected by the spec's fold key
            self.fold_sets = [JobSet(self.out / f"fold{k}", jobs, source,
                                     common_overrides=[*overrides, f"{self.spec.fold_key}={k}"])
                              for k in range(self.spec.folds)]
        self.jobs = self.fold_sets[0]

    def _transfer_targets(self, data: str, table: str) -> tuple[list[FoldColumn], list[TransferTarget]]:
        """``--transfer DATA``: the target's columns and, per split of this study, the target
        (its split of the same number where its family's fold key is a dataset key)."""
        choice = choose_data(data)
        fam = self.spec.families.get(choice.family)
        if choice.source is None or fam is None or not fam.columns:
            raise SckdError(f"reproduce {table} --transfer {data}: needs a dataset folder or config of a family with "
                            f"columns in reproduce/{table}.yaml ({', '.join(sorted(self.spec.families)) or 'none'})")
        name = resolve_dataset(data).name
        mine = self.spec.families.get(self.choice.family)
        n = mine.folds if mine else self.spec.folds
        key = fam.fold_key if fam.fold_key.startswith("dataset.") else ""
        return list(fam.columns), [TransferTarget(data, name, [f"{key}={k % fam.folds}"] if key else [])
                                   for k in range(n)]

    def stages(self) -> list[Stage]:
        stages: list[Stage] = []
        sizes: dict[str, int] = {}
        tp: dict[str, float] = {}
        if self.world is not None and self.choice.family == "synth":
            tp = load_demo_config("demo/default.yaml").throughput
            sizes = split_sizes(self.world)
            stages.append(replace(world_stage(self.out, self.world, self.world.frames / tp.get("synth", 25.0), self.say),
                                  needs=[]))
        # Each job evaluated right after its training (on every split before the next job), so
        # an interrupted run, or `--report` beside a long one, already has whole rows.
        # What each stage reads (`needs`), so that the same command started in more processes
        # on one OUT runs different stages side by side: a training needs the world and its
        # teacher's training, a scoring its own training.
        world = [stages[0].name] if stages else []
        if len(self.fold_sets) == 1:
            js = self.jobs
            for j in js.jobs:
                train = js.train_stage(j, js.train_estimate(j, sizes, tp))
                stages.append(replace(train, needs=world + [f"train-{k}" for k in (j.teacher, j.init_from) if k]
                                      + ([f"pseudo-labels-{j.sigma_from}"] if j.sigma_from else [])))
                stages.append(replace(js.evaluate_stage(j, js.eval_estimate(sizes, tp)), needs=[train.name]))
                if j.key in self._pseudo_jobs:
                    stages.append(replace(self._pseudo_stage(js, j), needs=[train.name]))
                if self.transfer and j.kind != "teacher":
                    stages.append(replace(js.transfer_stage(j, self.transfer[1][0]), needs=[train.name]))
            return stages
        for j in self.jobs.jobs:
            for k, js in enumerate(self.fold_sets):
                sts = [js.train_stage(j), js.evaluate_stage(j)]
                if j.key in self._pseudo_jobs:
                    sts.append(self._pseudo_stage(js, j))
                if self.transfer and j.kind != "teacher":
                    sts.append(js.transfer_stage(j, self.transfer[1][k]))
                train = f"fold{k}-{sts[0].name}"
                reads = [f"fold{k}-train-{t}" for t in (j.teacher, j.init_from) if t]
                reads += [f"fold{k}-pseudo-labels-{j.sigma_from}"] if j.sigma_from else []
                for st in sts:
                    needs = world + reads if st is sts[0] else [train]
                    stages.append(replace(st, name=f"fold{k}-{st.name}", title=f"fold {k}: {st.title}",
                                          needs=needs))
        return stages

    @property
    def _pseudo_jobs(self) -> list[str]:
        return self.spec.pseudo_labels.jobs if self.spec.pseudo_labels else []

    def _pseudo_stage(self, js: JobSet, job: ModelJob) -> Stage:
        pl = self.spec.pseudo_labels
        return js.pseudo_stage(job, sorted(pl.sigmas), pl.split, errors_sigma=pl.sigma,
                               min_precision=pl.min_precision)

    def pseudo_tables(self) -> tuple[str, str]:
        """(text, Markdown) of the teachers' pseudo-labels; empty where none is scored yet."""
        pl = self.spec.pseudo_labels
        if pl is None:
            return "", ""
        per_fold = [{k: r for k in pl.jobs if (r := js.read_pseudo(k)) is not None} for js in self.fold_sets]
        labels = {j.key: j.label for j in self.jobs.jobs}
        return format_pseudo_tables(per_fold, pl.jobs, labels, pl.class_name, pl.sigma, pl.min_precision,
                                    len(self.fold_sets))

    def run(self) -> PipelineResult:
        self.out.mkdir(parents=True, exist_ok=True)
        self.jobs.validate()
        return Pipeline(self.out, self.stages(), self.say).run()

    def finished(self) -> tuple[PipelineResult, int]:
        """(the stages finished so far, the number of stages): for a table of what is done
        while the rest runs elsewhere."""
        stages = self.stages()
        return Pipeline(self.out, stages, self.say).finished(), len(stages)

    def save_state(self, dest: Path) -> int:
        """Copy what a rerun needs to skip this table's finished stages -- their markers and
        results (a few KB each) and the checkpoints of the finished trainings that a stage still
        to run reads (a teacher whose students are not trained yet; weights and config only,
        1.3 MB for an Astyx teacher) -- to ``dest``, keeping paths relative to OUT. Copied back
        into an OUT (``cp -r DEST/. OUT/``), a rerun on another machine trains only what is
        left. Returns the number of files."""
        import shutil

        from sckd.engine import checkpoint as ck

        dest = Path(dest)
        pipe = Pipeline(self.out, self.stages(), self.say)
        # this table's own: an OUT shared with another table (astyx beside recipe) holds theirs too
        files = [m for s in pipe.stages if (m := pipe.marker(s.name)).is_file()]
        files += [o for s in pipe.stages for o in s.outputs if o.suffix == ".json" and o.is_file()]
        files += [r for js in self.fold_sets for j in js.jobs
                  for r in sorted((js.out / "results").glob(f"{j.key}@iou*.json"))]
        to_run = pipe.needed()
        read = {n for s in pipe.stages if s.name in to_run for n in pipe.needs[s.name]}
        weights = [o for s in pipe.stages if s.name in read and pipe.is_done(s)
                   for o in s.outputs if o.suffix == ".pt" and o.is_file()]
        for f in files + weights:
            target = dest / f.relative_to(self.out)
            target.parent.mkdir(parents=True, exist_ok=True)
            if f.suffix == ".pt":  # the weights a reader loads; no optimiser state (a third the size)
                c = ck.load_checkpoint(f)
                ck.save_checkpoint(replace(c, optimizer=None, scheduler=None, scaler=None, rng=[]), target)
            else:
                shutil.copyfile(f, target)
        return len(files) + len(weights)

    def teacher_notes(self) -> list[str]:
        """One line per split and student trained from other teacher weights than those its
        teacher's row scored (the teacher's checkpoint was lost and trained again, e.g. on
        another machine, after it was scored): its gains over rows distilled from the first
        training then mix two teachers. From the weight digests in the stage markers; rows
        whose markers predate them are not checked."""
        labels = {j.key: j.label for j in self.jobs.jobs}
        notes = []
        for k, js in enumerate(self.fold_sets):
            prefix = f"fold{k}-" if len(self.fold_sets) > 1 else ""
            for j in js.jobs:
                if not j.teacher:
                    continue
                read = (stage_info(self.out, f"{prefix}train-{j.key}") or {}).get("teacher_weights")
                scored = (stage_info(self.out, f"{prefix}eval-{j.teacher}") or {}).get("weights")
                if read and scored and read != scored:
                    where = f"split {k}" if len(self.fold_sets) > 1 else "this run"
                    notes.append(f"{where}: {labels[j.key]} was distilled from another training of "
                                 f"{labels[j.teacher]} (weights {read}) than the one its row scores ({scored})")
        return notes

    def tables(self) -> tuple[str, str]:
        """(text, Markdown) tables of the finished jobs."""
        if len(self.fold_sets) > 1 or self.spec.columns:
            return self._fold_tables()
        classes = list(self.jobs.experiment(self.jobs.jobs[0]).eval.classes)
        rows = {j.key: ModelScores.from_result(j.label, self.jobs.read_result(j.key), classes) for j in self.jobs.jobs}
        gains = [gain(rows[a], rows[b], f"{rows[a].label} - {rows[b].label}") for a, b in self.spec.gains]
        ref = None
        if self.choice.family == "vod":
            ref = {j.label: (j.reference[0], j.reference[1]) for j in self.spec.jobs if j.reference}
        ordered = [rows[j.key] for j in self.jobs.jobs]
        return (format_text_table(ordered, classes, gains, ref), format_markdown_table(ordered, classes, gains, ref))

    def fold_results(self) -> list[dict[str, EvalResult]]:
        """Per fold: job key -> result (jobs not evaluated yet are left out)."""
        out = []
        ious = sorted({c.iou for c in self.spec.columns if c.iou is not None})
        for js in self.fold_sets:
            res: dict[str, EvalResult] = {}
            for j in js.jobs:
                if js.result_file(j.key).is_file():
                    res[j.key] = js.read_result(j.key)
                    for iou in ious:
                        if (r := self._at_iou(js, j.key, iou)) is not None:
                            res[f"{j.key}@iou{iou:g}"] = r
            out.append(res)
        return out

    def figures(self) -> list[Path]:
        """Curves and BEV panels of ``spec.figures`` on the first split (when all are done)."""
        js = self.fold_sets[0]
        keys = self.spec.figures
        # the predictions are gone where OUT was carried over as markers and results only
        if not keys or not all(js.result_file(k).is_file() and js.predictions(k).is_dir() for k in keys):
            return []
        prefix = "fold0-" if len(self.fold_sets) > 1 else ""
        labels = {j.key: j.label for j in js.jobs}
        runs = [js.curve_run(k, labels[k], prefix) for k in keys]
        pngs = plot_training_curves(runs, self.out, *self.spec.curve_metrics[:2])
        models = [(k, labels[k], i == 0) for i, k in enumerate(keys)]
        return pngs + js.bev_panels(models, self.spec.bev_frames, 0.3, self.out)

    @staticmethod
    def _at_iou(js: JobSet, key: str, iou: float) -> EvalResult | None:
        """A job's predictions scored again with every class at IoU ``iou`` (cached); None (an
        empty cell) where the run was carried over as its result only (``--save``), without
        predictions or checkpoint."""
        from sckd.engine import checkpoint as ck
        from sckd.eval import evaluate_folder
        from sckd.experiment.predict import experiment_for_checkpoint

        path = js.out / "results" / f"{key}@iou{iou:g}.json"
        if path.is_file():
            return read_result(path)
        ckpt = js.checkpoint(key)
        if not (ckpt.is_file() and js.predictions(key).is_dir()):
            return None
        exp = experiment_for_checkpoint(ck.load_checkpoint(ckpt), ckpt, js.data.predict_arg)
        ecfg = replace(exp.eval, iou_thresholds={c: iou for c in exp.eval.classes})
        result = evaluate_folder(exp.dataset, js.split, js.predictions(key), ecfg)
        write_text_atomic(path, json.dumps(result.to_official_json(), indent=1), "result")
        return result

    def _fold_tables(self) -> tuple[str, str]:
        labels = {j.key: j.label for j in self.jobs.jobs}
        rows = mean_std_rows(self.fold_results(), [j.key for j in self.jobs.jobs], self.spec.columns,
                             self.spec.gains)
        text, md = format_fold_tables(rows, labels, self.spec.columns, len(self.fold_sets))
        if not self.transfer:
            return text, md
        columns, targets = self.transfer
        keys = [j.key for j in self.jobs.jobs if j.kind != "teacher"]
        results = []
        for js, t in zip(self.fold_sets, targets):
            results.append({k: js.read_result(t.result_key(k)) for k in keys
                            if js.result_file(t.result_key(k)).is_file()})
        gains = [g for g in self.spec.gains if set(g) <= set(keys)]
        t_text, t_md = format_fold_tables(mean_std_rows(results, keys, columns, gains), labels, columns,
                                          len(self.fold_sets))
        head = f"The same models scored on {targets[0].name} ({targets[0].data})"
        return f"{text}\n\n{head}\n\n{t_text}", f"{md}\n\n{head}:\n\n{t_md}"

    def write(self, result: PipelineResult) -> tuple[Path, str]:
        text, md = self.tables()
        p_text, p_md = self.pseudo_tables()
        if p_text:
            text, md = f"{text}\n\n{p_text}", f"{md}\n\n{p_md}"
        if notes := self.teacher_notes():
            head = "Teachers retrained after they were scored:"
            text = "\n".join([text, "", head, *notes])
            md = "\n".join([md, "", head, "", *(f"- {n}" for n in notes)])
        where = {"synth": "synthetic world", "vod": "View-of-Delft", "astyx": "Astyx HiRes2019"}.get(
            self.choice.family, self.choice.family)
        unit = "seeds" if self.spec.fold_key.endswith("seed") else "splits"
        folds = f", mean +- std over {len(self.fold_sets)} {unit}" if len(self.fold_sets) > 1 else ""
        metric = "AP (%)" if self.spec.columns else "3D AP|R11 (%)"
        head = f"{self.spec.title} -- {where}, {self.jobs.split} split{folds}, {metric}"
        stem = self.out / self.name
        write_text_atomic(stem.with_suffix(".txt"), f"{head}\n\n{text}\n")
        write_text_atomic(stem.with_suffix(".md"),
                          f"# {head}\n\n{md}\n\nTotal time {fmt_duration(result.total_stage_seconds)}.\n")
        self.figures()
        results = [{key: r.to_official_json() for key, r in fold.items()} for fold in self.fold_results()]
        write_text_atomic(stem.with_suffix(".json"), json.dumps(
            results[0] if len(results) == 1 else {f"fold{k}": r for k, r in enumerate(results)}, indent=1))
        return stem.with_suffix(".md"), f"{head}\n{text}"
