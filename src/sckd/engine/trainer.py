"""The training loop: any model with ``training_step(batch) -> {'loss': ..., ...}`` and
``predict(batch) -> list[Detections]`` (detectors and the SCKD distiller alike).

One step: forward (autocast on CUDA) -> backward (loss-scaled for float16) -> unscale ->
clip the global gradient norm -> AdamW step (skipped if the norm is not finite) -> one-cycle
step. Validation runs every ``val_every`` epochs and keeps ``best.pt`` by ``best_metric``;
periodic checkpoints hold everything needed to continue bit-for-bit (see
:mod:`sckd.engine.checkpoint`). Ctrl-C stops cleanly after the current step with a checkpoint;
a second Ctrl-C aborts.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from sckd.atomic import copy_atomic
from sckd.engine import checkpoint as ck
from sckd.engine.config import TrainConfig
from sckd.engine.distributed import (
    DistEnv,
    all_gather_objects,
    any_rank,
    barrier,
    wrap_for_training,
)
from sckd.engine.loader import batches, iters_per_epoch, make_loader
from sckd.engine.memory_format import to_channels_last
from sckd.engine.monitor import Monitor
from sckd.engine.optim import OneCycle, build_optimizer
from sckd.engine.rundir import checkpoints_dir
from sckd.engine.validation import Validator
from sckd.errors import SckdError, warnings

log = logging.getLogger("sckd")


@dataclass
class TrainState:
    epoch: int = 0
    step: int = 0
    step_in_epoch: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    last_metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    run_dir: Path
    state: TrainState
    stopped_early: bool
    frames_per_s: float
    """Training throughput of this process (frames / wall second of training steps)."""
    last_checkpoint: Path | None


class Trainer:
    def __init__(self, model: nn.Module, cfg: TrainConfig, train_set: Dataset,
                 collate: Callable[[list[Any]], Any], *, run_dir: Path, env: DistEnv,
                 validator: Validator | None = None, config: Any = None,
                 signature: str = "", on_step: Callable[["Trainer"], None] | None = None,
                 export: Callable[[ck.Checkpoint], ck.Checkpoint] | None = None) -> None:
        self.cfg, self.env, self.run_dir = cfg, env, Path(run_dir)
        self.model = model.to(env.device)
        if cfg.channels_last:  # the 2D convs only (a SECOND's 5-D sparse weights have no NHWC)
            self.model = to_channels_last(self.model)
        self.train_set, self.collate, self.validator = train_set, collate, validator
        self.config, self.signature, self.on_step = config if config is not None else {}, signature, on_step
        self.export = export
        """SCKD: turns a checkpoint into the one handed out as best.pt / final.pt (the
        student alone); periodic checkpoints keep the full state for resuming."""
        self.ckpt_dir = checkpoints_dir(self.run_dir)
        self.wrapped = wrap_for_training(self.model, env, sync_bn=cfg.sync_bn,
                                         find_unused_parameters=cfg.find_unused_parameters)
        self.optimizer = build_optimizer(self.model, cfg)
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.ipe = iters_per_epoch(len(train_set), cfg.batch_size, env.world_size, cfg.drop_last)
        if self.ipe == 0:
            raise SckdError(f"config key 'train.batch_size': {cfg.batch_size} x {env.world_size} "
                            f"process(es) is more than the {len(train_set)} training frames with drop_last")
        self.total_steps = cfg.epochs * self.ipe
        self.scheduler = OneCycle.from_config(self.optimizer, cfg, self.total_steps)
        self.use_amp = cfg.amp and env.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if cfg.amp_dtype == "bfloat16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.state = TrainState()
        self._stop: str | None = None  # the name of the signal that asked the run to stop
        self._stop_told = False  # whether that request is in the log yet
        self._nonfinite = 0
        self._saved_at: tuple[int, int] | None = None  # (epoch, step) of the last periodic save
        self._pending_rng: dict[str, Any] | None = None

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self) -> ck.Checkpoint:
        rng = all_gather_objects(self.env, ck.capture_rng())
        s = self.state
        return ck.Checkpoint(
            model=self.model.state_dict(), config=self.config, signature=self.signature,
            epoch=s.epoch, step=s.step, step_in_epoch=s.step_in_epoch, iters_per_epoch=self.ipe,
            world_size=self.env.world_size, optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
            best=ck.BestMetric(self.cfg.best_metric, s.best_value, s.best_epoch),
            metrics=dict(s.last_metrics), rng=rng)

    def save(self, name: str | None = None) -> Path | None:
        """Write a checkpoint (rank 0); ``name`` None = the periodic ``step_XXXXXXXX.pt``."""
        data = self.checkpoint()  # collective (RNG gather): every rank calls it
        path = self.ckpt_dir / (name or ck.step_checkpoint_name(self.state.step))
        if name is not None and self.export is not None:
            data = self.export(data)
        if self.env.is_main:
            ck.save_checkpoint(data, path)
            if name is None:
                ck.prune_checkpoints(self.ckpt_dir, self.cfg.max_ckpts)
        if name is None:
            self._saved_at = (self.state.epoch, self.state.step)
        barrier(self.env)
        return path

    def _save_unless_saved(self) -> Path:
        if self._saved_at == (self.state.epoch, self.state.step):
            return self.ckpt_dir / ck.step_checkpoint_name(self.state.step)
        return self.save()  # type: ignore[return-value]

    def resume(self, path: str | Path) -> None:
        """Restore model, optimiser, schedule, scaler, counters and RNG states from ``path``."""
        path = Path(path)
        ckpt = ck.load_checkpoint(path, map_location=self.env.device)
        if self.signature:
            ck.check_signature(ckpt, self.signature, path)
        if not ckpt.has_training_state:  # e.g. an exported best.pt / final.pt of a distillation run
            raise SckdError(f"{path}: holds no training state (optimiser and schedule), so training cannot "
                            "continue from it; resume from a step_*.pt checkpoint of the run")
        if ckpt.iters_per_epoch != self.ipe:
            raise SckdError(f"{path}: checkpoint has {ckpt.iters_per_epoch} steps per epoch, this run "
                            f"{self.ipe} (batch size, number of processes or training split changed); "
                            "resume with the settings it was trained with")
        self.model.load_state_dict(ckpt.model)
        self.optimizer.load_state_dict(ckpt.optimizer)
        fresh = self.scheduler.state_dict()  # the schedule this run's config asks for
        self.scheduler.load_state_dict(ckpt.scheduler)
        changed = [k for k in fresh if k != "step_num" and fresh[k] != ckpt.scheduler.get(k)]
        if changed:
            warnings.warn("resumed with a changed schedule", f"{path}: {', '.join(changed)} now from the config")
            self.scheduler.load_state_dict({**fresh, "step_num": ckpt.scheduler["step_num"]})
        if ckpt.scaler and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt.scaler)
        same_metric = ckpt.best.metric == self.cfg.best_metric
        self.state = TrainState(epoch=ckpt.epoch, step=ckpt.step, step_in_epoch=ckpt.step_in_epoch,
                                best_value=ckpt.best.value if same_metric else None,
                                best_epoch=ckpt.best.epoch if same_metric else None,
                                last_metrics=dict(ckpt.metrics))
        rng = ckpt.rng
        if len(rng) != self.env.world_size:
            warnings.warn("resumed with another number of processes", f"{path}: RNG states of "
                          f"{len(rng)} process(es), this run has {self.env.world_size}")
        # applied when fit() starts, so nothing done in between can shift the streams
        self._pending_rng = rng[self.env.rank % len(rng)] if rng else None
        log.info("resumed from %s (epoch %d, step %d)", path, self.state.epoch + 1, self.state.step)

    def init_weights(self, path: str | Path) -> None:
        """Load the model weights of ``path`` and nothing else (``train.init_from``): the
        optimiser, schedule and counters start afresh."""
        path = Path(path)
        if not path.is_file():
            raise SckdError(f"config key 'train.init_from': {path}: checkpoint not found")
        ckpt = ck.load_checkpoint(path, map_location=self.env.device)
        if self.signature:
            ck.check_signature(ckpt, self.signature, path)
        try:
            self.model.load_state_dict(ckpt.model)
        except RuntimeError as e:  # a first-format file of another layout
            raise SckdError(f"{path}: weights do not fit this model ({str(e).splitlines()[0]})") from None
        log.info("weights from %s (%s epochs done there); a new optimiser and schedule", path, ckpt.epoch)

    # --------------------------------------------------------------------- training

    def _install_sigint(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        # SIGTERM (a scheduler pre-empting the job) is treated like the first Ctrl-C.
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {s: signal.getsignal(s) for s in signals}

        def handler(signum, frame):  # noqa: ARG001
            # Only a flag here: a handler that logs can land inside the main thread's own write to
            # the log file, and the buffered file refuses the reentrant call (the line is lost).
            if self._stop:
                raise KeyboardInterrupt
            self._stop = signal.Signals(signum).name

        for s in signals:
            signal.signal(s, handler)
        return lambda: [signal.signal(s, h) for s, h in previous.items()] and None

    def _tell_stop(self, last: bool = False) -> None:
        """Log a stop request once, from the main loop (never from the signal handler)."""
        if not self._stop or self._stop_told:
            return
        self._stop_told = True
        if last:
            log.warning("%s after the last step: the run ends as it would have", self._stop)
        else:
            log.warning("%s: stopping at step %d with a checkpoint (Ctrl-C again to abort)",
                        self._stop, self.state.step)

    def train_step(self, batch: Any) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One optimiser step; returns the detached loss terms and the (pre-clip) grad norm."""
        batch = batch.to(self.env.device)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=self.env.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            out = self.wrapped(batch)
        if not isinstance(out, dict) or "loss" not in out:
            raise SckdError(f"{type(self.model).__name__}.training_step: must return a dict with 'loss'")
        self.scaler.scale(out["loss"]).backward()
        self.scaler.unscale_(self.optimizer)
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip is not None else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        finite = bool(torch.isfinite(grad_norm))
        if self.scaler.is_enabled():
            self.scaler.step(self.optimizer)  # skips the step itself on inf/NaN gradients
            self.scaler.update()
        elif finite:
            self.optimizer.step()
        self._nonfinite = 0 if finite else self._nonfinite + 1
        if not finite:
            warnings.warn("non-finite gradient norm, step skipped", f"step {self.state.step + 1}")
            if self._nonfinite >= self.cfg.max_nonfinite:
                raise SckdError(f"config key 'train.max_nonfinite': {self._nonfinite} consecutive steps "
                                "with inf/NaN gradients; lower train.lr or check the data")
        self.scheduler.step()
        return {k: v.detach() for k, v in out.items() if torch.is_tensor(v) and v.numel() == 1}, grad_norm

    def _validate_due(self, epoch_done: int) -> bool:
        v = self.cfg.val_every
        return self.validator is not None and v > 0 and (epoch_done % v == 0 or epoch_done == self.cfg.epochs)

    def _end_of_epoch(self, monitor: Monitor) -> None:
        s, cfg = self.state, self.cfg
        warnings.collect()  # what the epoch's loader workers warned about
        metrics = None
        if self._validate_due(s.epoch + 1):
            t0 = time.perf_counter()
            try:
                metrics = self.validator(self.model)  # type: ignore[misc]
            except Exception:
                # Keep the epoch's training: a checkpoint from before the epoch closes, so a
                # resume re-runs this validation. (Under DDP the other ranks may be inside a
                # collective; torchrun tears the group down instead.)
                if not self.env.distributed:
                    self.save()
                    log.error("validation failed; training state saved at step %d", s.step)
                raise
        s.epoch += 1
        s.step_in_epoch = 0
        if metrics is not None:
            s.last_metrics = dict(metrics)
            monitor.scalars("val", metrics, s.step)
            value = metrics.get(cfg.best_metric)
            headline = [k for k in metrics if k.endswith(("/mAP_3d", "/mAP_bev"))] or list(metrics)[:6]
            if cfg.best_metric in metrics and cfg.best_metric not in headline:
                headline.insert(0, cfg.best_metric)
            shown = ", ".join(f"{k}={metrics[k]:.2f}" for k in headline)
            monitor.write(f"validation after epoch {s.epoch} ({time.perf_counter() - t0:.1f} s): {shown}")
            if value is None:
                warnings.warn("validation metric missing", f"config key 'train.best_metric': "
                              f"{cfg.best_metric!r} not in {sorted(metrics)}")
            elif s.best_value is None or value > s.best_value:
                s.best_value, s.best_epoch = float(value), s.epoch
                self.save("best.pt")
                monitor.write(f"new best {cfg.best_metric} = {value:.4f} (epoch {s.epoch})")
        if cfg.ckpt_unit == "epoch" and (s.epoch % cfg.ckpt_every == 0):
            self.save()

    def fit(self) -> TrainResult:
        cfg, s, env = self.cfg, self.state, self.env
        monitor = Monitor(self.run_dir, total_steps=self.total_steps, start_step=s.step,
                          log_every=cfg.log_every, progress=cfg.progress, enabled=env.is_main)
        restore_sigint = self._install_sigint()
        if self._pending_rng is not None:
            ck.restore_rng(self._pending_rng)
            self._pending_rng = None
        stopped_early, last_ckpt = False, None
        train_time, frames = 0.0, 0
        self.wrapped.train()
        try:
            if s.epoch >= cfg.epochs:
                monitor.write(f"run already finished ({s.epoch} epochs); nothing to do")
                return TrainResult(self.run_dir, s, False, 0.0, None)
            while s.epoch < cfg.epochs and not stopped_early:
                monitor.set_epoch(s.epoch, cfg.epochs)
                loader = make_loader(self.train_set, self.collate, batch_size=cfg.batch_size,
                                     workers=cfg.workers, seed=cfg.seed, epoch=s.epoch, env=env,
                                     shuffle=True, drop_last=cfg.drop_last, start_batch=s.step_in_epoch)
                t_last = time.perf_counter()
                # closed here, not when collected: a failed step ends the workers at once
                with batches(loader) as it:
                    for batch in it:
                        g = self.optimizer.param_groups[0]
                        lr, mom = g["lr"], g["betas"][0]  # the values this step uses
                        terms, grad_norm = self.train_step(batch)
                        s.step += 1
                        s.step_in_epoch += 1
                        now = time.perf_counter()
                        train_time += now - t_last
                        frames += batch.batch_size
                        monitor.on_step(terms, frames=batch.batch_size, lr=lr, momentum=mom,
                                        grad_norm=grad_norm, epoch=s.epoch)
                        if self.on_step is not None:
                            self.on_step(self)
                        if cfg.ckpt_unit == "step" and s.step % cfg.ckpt_every == 0:
                            last_ckpt = self.save()
                        self._tell_stop()
                        stop = bool(self._stop) or (cfg.max_steps is not None and s.step >= cfg.max_steps)
                        if any_rank(env, stop):
                            stopped_early = True
                            break
                        t_last = time.perf_counter()
                if s.step_in_epoch >= self.ipe:  # the epoch is complete (also when stopped at its end)
                    self._end_of_epoch(monitor)
                    if self._saved_at == (s.epoch, s.step):
                        last_ckpt = self.ckpt_dir / ck.step_checkpoint_name(s.step)
            if stopped_early and s.epoch < cfg.epochs:
                last_ckpt = self._save_unless_saved()
                monitor.write(f"stopped at step {s.step} (epoch {s.epoch + 1}); continue with --resume")
            else:
                stopped_early = False
                last_ckpt = self._save_unless_saved()
                if env.is_main and self.export is not None:
                    ck.save_checkpoint(self.export(ck.load_checkpoint(last_ckpt)), self.ckpt_dir / "final.pt")
                elif env.is_main:
                    copy_atomic(last_ckpt, self.ckpt_dir / "final.pt", "checkpoint")
            self._tell_stop(last=True)  # a request that came after the last step's check
        finally:
            restore_sigint()
            monitor.close()
        fps = frames / train_time if train_time > 0 else 0.0
        return TrainResult(self.run_dir, s, stopped_early, fps, last_ckpt)
