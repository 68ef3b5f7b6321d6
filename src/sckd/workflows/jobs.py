"""Train-and-evaluate stages for sets of experiments (``sckd demo``, ``sckd reproduce``).

A :class:`ModelJob` is one experiment config to train in ``OUT/runs/<key>`` (the engine
continues from the folder's latest checkpoint after an interruption); its final checkpoint is
copied to ``OUT/checkpoints/<key>.pt`` (for a distillation run: the exported student, a plain
detector checkpoint). A job may name another job as its SCKD teacher: it then trains against
that job's checkpoint. Evaluation writes KITTI prediction files with the checkpoint (what
``sckd predict`` does) to ``OUT/predictions/<key>/`` and scores them with the VoD metric (what
``sckd eval`` does) into ``OUT/results/<key>.json``.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sckd.atomic import copy_atomic, write_text_atomic
from sckd.data.resolve import resolve_dataset
from sckd.errors import SckdError
from sckd.eval.result import EvalResult
from sckd.experiment.config import ExperimentConfig, load_experiment
from sckd.report.figures import PanelModel, bev_panels
from sckd.report.plots import CurveRun
from sckd.workflows.pipeline import Stage, StageInterrupted, stage_info

log = logging.getLogger("sckd")


@dataclass
class DataSource:
    """Where the data of every job comes from: a dataset root replacing ``dataset.root``
    (the synthetic world), or a dataset config file (``dataset:`` section with its root) that
    replaces the experiment's dataset section (e.g. the user's VoD config)."""

    root: str | None = None
    config_file: str | None = None

    def apply(self, exp: ExperimentConfig) -> None:
        if self.config_file:
            exp.dataset = resolve_dataset(self.config_file)
        if self.root and Path(self.root).is_dir():
            exp.dataset = resolve_dataset(self.root, base=exp.dataset)
        elif self.root:  # a synthetic world a stage of this workflow has yet to write
            exp.dataset.root = self.root
        if not exp.dataset.root:
            raise SckdError(f"{self.config_file or 'dataset'}: config key 'dataset.root' is empty")

    @property
    def predict_arg(self) -> str:
        """What ``predict_checkpoint(data=...)`` takes for this source."""
        return self.config_file if self.config_file and not self.root else str(self.root)


@dataclass
class TransferTarget:
    """Another dataset the radar models of a job set are scored on as well (cross-dataset):
    read in each model's feature layout (:meth:`ExperimentConfig.read_dataset`)."""

    data: str
    """Its folder or dataset config."""
    name: str
    """Its dataset name: results go to ``results/<key>@<name>.json``."""
    overrides: list[str] = field(default_factory=list)
    """``dataset.*`` overrides for it (e.g. which Astyx split)."""

    def result_key(self, key: str) -> str:
        return f"{key}@{self.name}"


@dataclass
class ModelJob:
    key: str
    """File-name stem: ``runs/<key>``, ``checkpoints/<key>.pt``, ``results/<key>.json``."""
    label: str
    """Row label in tables and plots."""
    config: str
    """Experiment config (path or name under configs/)."""
    overrides: list[str] = field(default_factory=list)
    teacher: str | None = None
    """Key of the job whose checkpoint is this job's SCKD teacher (its config needs ``distill:``)."""
    kind: str = "radar"
    """``teacher`` (reads LiDAR), ``student`` (distillation) or ``radar``: for time estimates."""
    init_from: str | None = None
    """Key of the job whose checkpoint this job's training starts from (``train.init_from``:
    weights only, a new schedule), e.g. a second cycle on top of a finished run."""
    sigma_from: str | None = None
    """Key of the job whose pseudo-label result (``results/pseudo-labels-<key>.json``) sets this
    student's ``distill.ssod.sigma``: per class, just below the threshold with the highest recall
    at which those pseudo-labels keep ``min_precision`` (:meth:`JobSet.chosen_sigma`)."""
    min_precision: float = 0.6


def read_result(path: Path) -> EvalResult:
    """An evaluation result written by :meth:`JobSet.evaluate_stage` (the official JSON)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SckdError(f"{path}: cannot read the evaluation result ({e})") from None
    return EvalResult.from_official_json(data, str(path))


class JobSet:
    def __init__(self, out: Path, jobs: list[ModelJob], data: DataSource, *,
                 common_overrides: list[str] = (), split: str = "val") -> None:
        self.out, self.jobs, self.data = Path(out), jobs, data
        self.common = list(common_overrides)
        self.split = split
        keys = [j.key for j in jobs]
        if len(set(keys)) != len(keys):
            raise SckdError(f"job keys repeat: {keys}")
        for j in jobs:
            if j.teacher is not None and j.teacher not in keys:
                raise SckdError(f"{j.config}: teacher job '{j.teacher}' is not in this set")
            if j.init_from is not None and j.init_from not in keys:
                raise SckdError(f"{j.config}: job '{j.init_from}' to start from is not in this set")

    # --------------------------------------------------------------------------- paths

    def job(self, key: str) -> ModelJob:
        return next(j for j in self.jobs if j.key == key)

    def run_dir(self, key: str) -> Path:
        return self.out / "runs" / key

    def checkpoint(self, key: str) -> Path:
        return self.out / "checkpoints" / f"{key}.pt"

    def predictions(self, key: str) -> Path:
        return self.out / "predictions" / key

    def result_file(self, key: str) -> Path:
        return self.out / "results" / f"{key}.json"

    def pseudo_file(self, key: str) -> Path:
        return self.out / "results" / f"pseudo-labels-{key}.json"

    # -------------------------------------------------------------------------- figures

    def curve_run(self, key: str, label: str, stage_prefix: str = "") -> CurveRun:
        """A job's training curves, epochs from the steps and epochs its training stage
        finished with."""
        info = stage_info(self.out, f"{stage_prefix}train-{key}") or {}
        try:
            spe = max(int(info["steps"]) // max(int(info["epochs"]), 1), 1)
        except (KeyError, TypeError, ValueError):
            spe = 1
        return CurveRun(label, self.run_dir(key), spe)

    def bev_panels(self, models: list[tuple[str, str, bool]], n_frames: int, min_score: float,
                   out_dir: Path) -> list[Path]:
        """Bird's-eye panels of the jobs ``models`` (key, label, show LiDAR) on this set's split."""
        ds_cfg = self.experiment(self.job(models[0][0])).dataset
        return bev_panels(ds_cfg, self.split, [PanelModel(label, self.predictions(k), lidar)
                                              for k, label, lidar in models], n_frames, min_score, out_dir)

    # ----------------------------------------------------------------------- experiments

    def experiment(self, job: ModelJob) -> ExperimentConfig:
        exp = load_experiment(job.config, [*self.common, *job.overrides])
        self.data.apply(exp)
        exp.name = job.key
        if job.teacher is not None:
            if exp.distill is None:
                raise SckdError(f"{job.config}: has no 'distill' section but is given a teacher")
            exp.distill.teacher.checkpoint = str(self.checkpoint(job.teacher))
        elif exp.distill is not None and not exp.distill.teacher.checkpoint:
            raise SckdError(f"{job.config}: config key 'distill.teacher.checkpoint' is empty and no "
                            "teacher job is named")
        if job.init_from is not None:
            exp.train.init_from = str(self.checkpoint(job.init_from))
        return exp

    def experiment_to_train(self, job: ModelJob) -> tuple[ExperimentConfig, list[float] | None]:
        """The experiment its training stage runs: :meth:`experiment`, and for a job with
        ``sigma_from`` the sigma of :meth:`chosen_sigma` (returned too, for the stage marker)."""
        exp = self.experiment(job)
        if not job.sigma_from:
            return exp, None
        sigma = self.chosen_sigma(job, list(exp.dataset.classes))
        exp.distill.ssod.sigma = sigma
        log.info("%s: distill.ssod.sigma = %s (precision >= %g on %s's labeled train frames)", job.key,
                 [round(v, 4) for v in sigma], job.min_precision, job.sigma_from)
        return exp, sigma

    def validate(self) -> None:
        """Load every job's config now, so a bad key fails before hours of training."""
        for j in self.jobs:
            exp = load_experiment(j.config, [*self.common, *j.overrides])
            if j.teacher is not None and exp.distill is None:
                raise SckdError(f"{j.config}: has no 'distill' section but is given a teacher")

    # ------------------------------------------------------------------------ estimates

    def train_estimate(self, job: ModelJob, sizes: dict[str, int], throughput: dict[str, float]) -> float:
        """Seconds to train ``job`` at ``throughput[kind]`` frames/s (``sizes``: frames per
        split), validations at ``throughput['eval']``; 0 when a figure is missing."""
        exp = load_experiment(job.config, [*self.common, *job.overrides])
        rate = throughput.get(job.kind if job.kind != "radar" else "baseline")
        if not rate:
            return 0.0
        c = exp.train
        frames = sizes.get(c.train_split, 0) * exp.pool.labeled_fraction
        if exp.pool.rest_of_split == "unlabeled":
            frames = sizes.get(c.train_split, 0)
        frames += sum(sizes.get(s, 0) for s in exp.pool.unlabeled_splits)
        if exp.pool.epoch == "labeled":
            frames = sizes.get(c.train_split, 0) * exp.pool.labeled_fraction
        elif exp.pool.epoch == "frames":
            frames = exp.pool.epoch_frames or 0
        n_val = (c.epochs // c.val_every + (c.epochs % c.val_every != 0)) if c.val_every else 0
        return frames * c.epochs / rate + self.eval_estimate(sizes, throughput) * n_val

    def eval_estimate(self, sizes: dict[str, int], throughput: dict[str, float]) -> float:
        rate = throughput.get("eval")
        return sizes.get(self.split, 0) / rate if rate else 0.0

    # ---------------------------------------------------------------------------- stages

    def train_stage(self, job: ModelJob, estimate_s: float = 0.0) -> Stage:
        def run() -> dict[str, Any]:
            from sckd.engine.distributed import cleanup, init_distributed
            from sckd.experiment.train import train_experiment

            exp, sigma = self.experiment_to_train(job)
            teacher = self.weights_of(job.teacher) if job.teacher else None  # read before, kept in the marker
            start = self.weights_of(job.init_from) if job.init_from else None
            if sys.stderr.isatty():
                exp.train.progress = True  # a live bar on a terminal, log lines with ETA otherwise
            env = init_distributed(exp.train.device)
            try:
                result = train_experiment(exp, run_dir=self.run_dir(job.key), env=env)
            finally:
                cleanup()
            if result.stopped_early:
                raise StageInterrupted(f"training of {job.key} stopped at step {result.state.step}")
            final = self.run_dir(job.key) / "checkpoints" / "final.pt"
            if not final.is_file():
                raise SckdError(f"{final}: training finished without a final checkpoint")
            self.checkpoint(job.key).parent.mkdir(parents=True, exist_ok=True)
            copy_atomic(final, self.checkpoint(job.key), "checkpoint")
            s = result.state
            info = {"steps": s.step, "epochs": s.epoch, "frames_per_s": result.frames_per_s,
                    "weights": self.weights_of(job.key)}
            return (info | ({"teacher_weights": teacher} if teacher else {}) | ({"init_weights": start} if start else {})
                    | ({"sigma": sigma} if sigma is not None else {}))

        what = (f"train {job.label} ({job.config}" + (f", teacher: {job.teacher}" if job.teacher else "")
                + (f", from {job.init_from}'s weights" if job.init_from else "") + ")")
        return Stage(f"train-{job.key}", what, run, [self.checkpoint(job.key)], estimate_s, "train")

    def _score(self, key: str, result_key: str, data: str, overrides: list[str]) -> dict[str, Any]:
        """Predict the split of ``data`` with job ``key``'s checkpoint into ``predictions/<result_key>``
        and write the metric's result to ``results/<result_key>.json``."""
        import shutil

        from sckd.engine import checkpoint as ck
        from sckd.eval import evaluate_folder
        from sckd.experiment.predict import (
            experiment_for_checkpoint,
            predict_checkpoint,
        )

        path = self.checkpoint(key)
        preds = self.predictions(result_key)
        if preds.exists():
            shutil.rmtree(preds)  # a cut-off earlier attempt
        summary = predict_checkpoint(path, preds, data=data, split=self.split, overrides=overrides)
        exp = experiment_for_checkpoint(ck.load_checkpoint(path), path, data, overrides)
        result = evaluate_folder(exp.dataset, self.split, preds, exp.eval)
        self.result_file(result_key).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.result_file(result_key), json.dumps(result.to_official_json(), indent=1), "result")
        return {"frames": summary.frames, "detections": summary.detections, "mAP": result.mAP,
                "weights": ck.weights_digest(ck.load_checkpoint(path))}

    def weights_of(self, key: str) -> str:
        """Digest of job ``key``'s checkpoint weights (:func:`sckd.engine.checkpoint.weights_digest`):
        the train and scoring markers keep it, and a student's train marker its teacher's, so a
        report can tell a student distilled from a retrained teacher (a checkpoint lost and
        trained again, on another machine: other weights) from one distilled from the scored one."""
        from sckd.engine import checkpoint as ck

        return ck.weights_digest(ck.load_checkpoint(self.checkpoint(key)))

    def evaluate_stage(self, job: ModelJob, estimate_s: float = 0.0) -> Stage:
        def run() -> dict[str, Any]:
            return self._score(job.key, job.key, self.data.predict_arg, [])

        return Stage(f"eval-{job.key}", f"evaluate {job.label} on the {self.split} split "
                     f"(predict -> {self.predictions(job.key).relative_to(self.out)}/, VoD metric)",
                     run, [self.result_file(job.key)], estimate_s, "eval")

    def transfer_stage(self, job: ModelJob, target: TransferTarget, estimate_s: float = 0.0) -> Stage:
        """Score job ``job``'s model on another dataset (cross-dataset transfer)."""
        key = target.result_key(job.key)

        def run() -> dict[str, Any]:
            return self._score(job.key, key, target.data, target.overrides)

        return Stage(f"transfer-{key}", f"score {job.label} on {target.name} ({target.data}, "
                     f"{self.split} split)", run, [self.result_file(key)], estimate_s, "eval")

    def pseudo_stage(self, job: ModelJob, sigmas: list[float], split: str = "train",
                     errors_sigma: float | None = None, min_precision: float = 0.6) -> Stage:
        """How job ``job``'s pseudo-labels score against the labels of ``split`` at each sigma,
        and where they miss at ``errors_sigma`` (what ``sckd pseudo-labels --errors`` prints), to
        ``results/pseudo-labels-<key>.json``."""

        def run() -> dict[str, Any]:
            res = self.score_pseudo(job.key, sigmas, split, errors_sigma, min_precision)
            return {"frames": res["frames"], "weights": res["weights"]}

        return Stage(f"pseudo-labels-{job.key}", f"score the pseudo-labels of {job.label} on the {split} split",
                     run, [self.pseudo_file(job.key)], 0.0, "eval")

    def score_pseudo(self, key: str, sigmas: list[float], split: str, errors_sigma: float | None,
                     min_precision: float) -> dict[str, Any]:
        """Score job ``key``'s checkpoint as :meth:`pseudo_stage` says, write the result (with the
        digest of the weights it scored) and return it."""
        from sckd.experiment.pseudo_stats import pseudo_label_quality

        weights = self.weights_of(key)
        r = pseudo_label_quality(self.checkpoint(key), sigmas, data=self.data.predict_arg, split=split,
                                 errors_sigma=errors_sigma, min_precision=min_precision)
        res = {"split": split, "frames": r.frames, "weights": weights, "classes": r.classes, "rows": r.rows,
               "best_f1_sigma": r.best_f1_sigma, "best_recall": r.best_recall,
               "sigma_choice": {"frames": r.sigma_choice_frames, "best_recall": r.sigma_choice},
               "errors_sigma": r.errors_sigma, "errors": r.errors,
               "fates": r.fates, "labeled": r.labeled, "outside_range": r.outside_range,
               "labeled_in_image": r.labeled_in_image, "by_points": r.by_points}
        self.pseudo_file(key).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.pseudo_file(key), json.dumps(res, indent=1), "result")
        return res

    def chosen_sigma(self, job: ModelJob, classes: list[str]) -> list[float]:
        """Per class of ``classes``: the sigma keeping exactly those of job ``job.sigma_from``'s
        pseudo-labels that reach the highest recall at a precision of at least ``job.min_precision``
        on the train frames whose labels that teacher trained on (``sigma_choice`` of its
        pseudo-label result, scored again first where it is not of the checkpoint the student
        reads; :func:`sckd.distill.pl_quality.sigma_keeping`)."""
        from sckd.distill.pl_quality import sigma_keeping

        path = self.pseudo_file(job.sigma_from)
        res = self.read_pseudo(job.sigma_from)
        if res is None:
            raise SckdError(f"{path}: not found; job '{job.key}' reads its sigma from it (run the pseudo-label "
                            f"stage of '{job.sigma_from}' first)")
        weights = self.weights_of(job.sigma_from)
        floors = [b.get("min_precision") for b in (res.get("sigma_choice") or {}).get("best_recall") or [{}]]
        if res.get("weights") != weights or any(f is None or abs(f - job.min_precision) > 1e-9 for f in floors):
            # scored before weights and sigma_choice were recorded, at another precision floor, or
            # another training of the teacher (a lost checkpoint trained again): score the one the
            # student reads, with that stage's sigmas, split and errors sigma
            if not (isinstance(res.get("rows"), list) and res.get("split")):
                raise SckdError(f"{path}: not a pseudo-label result (no 'rows' or 'split')")
            log.warning("%s: scored %s, not the weights of %s the student reads (%s) at precision %g: scoring "
                        "again", path, res.get("weights") or "unrecorded weights", job.sigma_from, weights,
                        job.min_precision)
            res = self.score_pseudo(job.sigma_from, [r["sigma"] for r in res["rows"]], res["split"],
                                    res.get("errors_sigma"), job.min_precision)
        choice = res["sigma_choice"]["best_recall"]
        out = []
        for name in classes:
            if name not in res.get("classes", []):
                raise SckdError(f"{path}: has no class '{name}' (classes {res.get('classes')})")
            best = choice[res["classes"].index(name)]
            lowest = float(best.get("lowest_score", float("nan")))
            if not lowest > 0.0:  # NaN: no threshold reaches the precision
                raise SckdError(f"{path}: no threshold gives the {name} pseudo-labels of '{job.sigma_from}' a "
                                f"precision of {job.min_precision:g}; job '{job.key}' has no sigma to use")
            out.append(sigma_keeping(lowest))
        return out

    def read_pseudo(self, key: str) -> dict | None:
        path = self.pseudo_file(key)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise SckdError(f"{path}: unreadable pseudo-label result ({e})") from None

    def read_result(self, key: str) -> EvalResult:
        return read_result(self.result_file(key))
