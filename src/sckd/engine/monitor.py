"""What a run reports while it trains (rank 0 only): a tqdm bar, TensorBoard scalars, a log file.

Loss terms are accumulated as detached tensors and read back (one device sync) every
``log_every`` steps; the bar's postfix, the log line and the TensorBoard scalars all show the
mean over that window. Other ranks get a monitor that does nothing.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import torch

log = logging.getLogger("sckd")


def attach_log_file(path: Path) -> logging.Handler:
    """Append everything the ``sckd`` logger says to ``path`` (with timestamps)."""
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("sckd")
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


def detach_log_file(handler: logging.Handler) -> None:
    logging.getLogger("sckd").removeHandler(handler)
    handler.close()


def _fmt_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


class Monitor:
    def __init__(self, run_dir: Path | None, *, total_steps: int, start_step: int, log_every: int,
                 progress: bool, enabled: bool = True) -> None:
        self.enabled = enabled
        self.total, self.log_every = total_steps, log_every
        self.step = start_step
        self._sums: dict[str, torch.Tensor] = {}
        self._n = 0
        self._frames = 0
        self._t0 = time.perf_counter()
        self._window_t0 = self._t0
        self._start_step = start_step
        self.writer = None
        self.bar = None
        if not enabled:
            return
        if run_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is a declared dependency; stay usable without it
                log.warning("tensorboard is not installed: no TensorBoard scalars for this run")
            else:
                self.writer = SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=start_step)
        if progress:
            from tqdm import tqdm
            self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                            file=sys.stderr, smoothing=0.05, leave=True)

    def set_epoch(self, epoch: int, epochs: int) -> None:
        if self.bar is not None:
            self.bar.set_description(f"epoch {epoch + 1}/{epochs}")

    def on_step(self, terms: dict[str, torch.Tensor], *, frames: int, lr: float, momentum: float,
                grad_norm: torch.Tensor | None, epoch: int) -> None:
        """Record one finished optimiser step (``self.step`` becomes the global step count)."""
        self.step += 1
        if not self.enabled:
            return
        for k, v in terms.items():
            v = v.detach().float()
            self._sums[k] = self._sums[k] + v if k in self._sums else v.clone()
        if grad_norm is not None:
            g = grad_norm.detach().float()
            self._sums["grad_norm"] = self._sums["grad_norm"] + g if "grad_norm" in self._sums else g.clone()
        self._n += 1
        self._frames += frames
        if self.bar is not None:
            self.bar.update(1)
        if self.step % self.log_every == 0 or self.step == self.total:
            self._flush(lr, momentum, epoch)

    def _flush(self, lr: float, momentum: float, epoch: int) -> None:
        if self._n == 0:
            return
        means = {k: float(v.item()) / self._n for k, v in self._sums.items()}
        now = time.perf_counter()
        fps = self._frames / max(now - self._window_t0, 1e-9)
        done = self.step - self._start_step
        eta = (now - self._t0) / max(done, 1) * (self.total - self.step)
        if self.writer is not None:
            for k, v in means.items():
                self.writer.add_scalar(f"train/{k}", v, self.step)
            self.writer.add_scalar("train/lr", lr, self.step)
            self.writer.add_scalar("train/momentum", momentum, self.step)
            self.writer.add_scalar("train/frames_per_s", fps, self.step)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{means.get('loss', float('nan')):.4f}", lr=f"{lr:.2e}")
        terms = " ".join(f"{k}={v:.4f}" for k, v in means.items())
        msg = (f"epoch {epoch + 1} step {self.step}/{self.total} {terms} lr={lr:.3e} "
               f"{fps:.1f} frames/s eta {_fmt_eta(eta)}")
        if self.bar is not None:
            # keep the file log complete without breaking the bar on the terminal
            for h in logging.getLogger("sckd").handlers:
                if isinstance(h, logging.FileHandler):
                    h.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, msg, (), None))
        else:
            log.info(msg)
        self._sums, self._n, self._frames, self._window_t0 = {}, 0, 0, now

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"{prefix}/{k}", v, step)
            self.writer.flush()

    def write(self, msg: str) -> None:
        """Log a line without tearing the bar."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.clear()
        log.info(msg)
        if self.bar is not None:
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
