"""Train an experiment: build data, model and validation from an :class:`ExperimentConfig`, pick
the run directory and checkpoint to continue from, and hand everything to the :class:`Trainer`.

This is what ``sckd train`` calls (once per process under ``torchrun``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from torch import nn
from torch.utils.data import Dataset

from sckd.atomic import write_text_atomic
from sckd.data.dataset import RadarDataset, collate
from sckd.engine import checkpoint as ck
from sckd.engine.distributed import DistEnv, barrier, broadcast_object
from sckd.engine.monitor import attach_log_file, detach_log_file
from sckd.engine.rundir import checkpoints_dir, prepare_run_dir
from sckd.engine.seeding import seed_everything, set_deterministic
from sckd.engine.trainer import Trainer, TrainResult
from sckd.engine.validation import DetectionValidator
from sckd.errors import SckdError, warnings
from sckd.experiment.config import ExperimentConfig, experiment_to_yaml, model_key

log = logging.getLogger("sckd")

ModelBuilder = Callable[[ExperimentConfig], nn.Module]


def read_teacher_checkpoint(path: Path) -> tuple[dict, dict]:
    """(weights, experiment config dict) of a teacher checkpoint, for :func:`sckd.distill.load_teacher`."""
    ckpt = ck.load_checkpoint(path)
    return ckpt.model, ckpt.config


def build_model(exp: ExperimentConfig) -> nn.Module:
    """The network an experiment trains: a detector, or with a ``distill`` section the SCKD
    distiller (student from ``model``, frozen teacher from its own config + checkpoint)."""
    from sckd.models import adaptive_fusion  # noqa: F401  (registers fusion type 'adaptive')
    from sckd.models.builder import build_detector
    if exp.distill is not None:
        from sckd.distill import build_distiller
        return build_distiller(exp.model, exp.dataset, exp.distill, read_teacher_checkpoint)
    return build_detector(exp.model, exp.dataset)


# --- SCKD (distillation + semi-supervised pools): kept together, see sckd.distill / sckd.data.semi
def build_train_set(exp: ExperimentConfig, model: nn.Module | None = None) -> Dataset:
    """The training frames (``pool:`` section). Labels are read for GT training, and for a
    student only when its GT loss is on; LiDAR when the model or its teacher reads it."""
    from sckd.data.semi import build_pool
    use_labels = exp.distill is None or exp.distill.gt.enabled
    with_lidar = exp.needs_lidar or bool(getattr(model, "needs_lidar", False))
    return build_pool(exp.dataset, exp.pool, exp.train.train_split, use_labels=use_labels,
                      with_lidar=with_lidar, augment=exp.augment, seed=exp.train.seed)


def student_exporter(exp: ExperimentConfig, model: nn.Module) -> Callable[[ck.Checkpoint], ck.Checkpoint] | None:
    """For a distillation run: checkpoint -> plain student checkpoint (what ``best.pt`` and
    ``final.pt`` hold, loadable by eval / predict with no teacher: the student's weights under
    the detector's key names, the config without ``distill:``, no optimiser state). None
    otherwise."""
    if exp.distill is None:
        return None
    from sckd.distill import student_weights
    student_exp = replace(exp, distill=None, pool=type(exp.pool)())
    signature = ck.model_signature(model.student, model_key(student_exp))
    return lambda c: replace(c, model=student_weights(c.model), config=student_exp, signature=signature,
                             optimizer=None, scheduler=None, scaler=None, rng=[], exported_from="distillation")
# --- end SCKD


def build_validator(exp: ExperimentConfig, env: DistEnv) -> DetectionValidator | None:
    """Validation on ``train.val_split`` with the metric layer (None when ``val_every`` is 0)."""
    if exp.train.val_every <= 0:
        return None
    from sckd.experiment.metrics import make_evaluate  # the adapter onto sckd.eval
    val_set = RadarDataset(exp.dataset, exp.train.val_split, with_lidar=exp.needs_lidar, labeled=True)
    return DetectionValidator(val_set, collate, make_evaluate(exp, val_set), env=env,
                              batch_size=exp.train.batch_size, workers=exp.train.workers,
                              frame_order=list(val_set.frame_ids))


def find_resume_checkpoint(run_dir: Path, resume: Path | None) -> Path | None:
    """``resume`` (a checkpoint file or a run folder) or, if None, the run folder's latest
    periodic checkpoint (auto-resume)."""
    if resume is not None:
        if resume.is_dir():
            found = ck.latest_checkpoint(checkpoints_dir(resume)) or ck.latest_checkpoint(resume)
            if found is None:
                raise SckdError(f"{resume}: no checkpoint (step_*.pt) to resume from")
            return found
        if not resume.is_file():
            raise SckdError(f"{resume}: checkpoint not found")
        return resume
    return ck.latest_checkpoint(checkpoints_dir(run_dir))


def train_experiment(exp: ExperimentConfig, *, run_dir: Path, env: DistEnv, resume: Path | None = None,
                     model_builder: ModelBuilder = build_model) -> TrainResult:
    """Train (or continue) ``exp`` in ``run_dir``; every rank calls this with the same arguments."""
    cfg = exp.train
    warnings.reset()  # this run's warnings, counted in the summary at its end
    set_deterministic(cfg.deterministic)
    if env.is_main:
        run_dir = prepare_run_dir(run_dir)
    barrier(env)
    seed_everything(cfg.seed)  # identical initial weights on every rank
    model = model_builder(exp)
    if env.rank:
        seed_everything(cfg.seed + env.rank)  # in-model randomness differs across ranks
    train_set = build_train_set(exp, model)
    validator = build_validator(exp, env)
    config_yaml = experiment_to_yaml(exp)
    trainer = Trainer(model, cfg, train_set, collate, run_dir=run_dir, env=env, validator=validator,
                      config=exp, signature=ck.model_signature(model, model_key(exp)),
                      export=student_exporter(exp, model))
    handler = None
    if env.is_main:
        write_text_atomic(run_dir / "config.yaml", config_yaml, "run config")
        handler = attach_log_file(run_dir / "train.log")
    try:
        start = broadcast_object(env, str(p) if (p := find_resume_checkpoint(run_dir, resume)) else None)
        if start is not None:
            trainer.resume(Path(start))
        elif cfg.init_from:
            trainer.init_weights(cfg.init_from)
        log.info("run directory: %s", run_dir)
        log.info("training %s: %d frames, %d steps/epoch x %d epochs, %d process(es) on %s",
                 exp.name, len(train_set), trainer.ipe, cfg.epochs, env.world_size, env.device)
        result = trainer.fit()
        if env.is_main:
            best = (f"best {cfg.best_metric} {result.state.best_value:.4f} (epoch {result.state.best_epoch})"
                    if result.state.best_value is not None else "no validation yet")
            log.info("done: step %d, %d epoch(s) complete, %.1f frames/s, %s", result.state.step,
                     result.state.epoch, result.frames_per_s, best)
            for line in warnings.summary():
                log.warning("warning in this run: %s", line)
        return result
    finally:
        if handler is not None:
            detach_log_file(handler)
