"""Training curves for the report (matplotlib, Agg backend), read back from the runs'
TensorBoard scalars, and the choice of frames worth a bird's-eye picture (:mod:`sckd.report.bev`
draws them)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sckd.eval.result import region_title
from sckd.report.bev import pyplot, save_figure

log = logging.getLogger("sckd")

MODEL_COLOURS = ["tab:purple", "tab:gray", "tab:orange", "tab:cyan", "tab:olive", "tab:pink"]


# ------------------------------------------------------------------------------ training curves

def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` from ``run_dir/tb`` (later writes of a step win, as after
    a resume); empty when there are no event files or TensorBoard is not installed."""
    tb = Path(run_dir) / "tb"
    if not tb.is_dir() or not any(tb.iterdir()):
        return {}
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        log.warning("tensorboard is not installed: no training curves in the report")
        return {}
    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # "No path found after ..." chatter
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    out: dict[str, list[tuple[int, float]]] = {}
    for tag in acc.Tags().get("scalars", []):
        by_step = {e.step: float(e.value) for e in acc.Scalars(tag)}
        out[tag] = sorted(by_step.items())
    return out


@dataclass
class CurveRun:
    label: str
    run_dir: Path
    steps_per_epoch: int


def plot_training_curves(runs: list[CurveRun], out_dir: Path, metric: str = "entire_area/mAP_3d",
                         second_metric: str = "roi/mAP_3d") -> list[Path]:
    """``curves_loss.png`` (total loss and its terms per run, against epochs) and
    ``curves_val_map.png`` (validation mAP per epoch, all runs together)."""
    plt = pyplot()
    scalars = {r.label: read_scalars(r.run_dir) for r in runs}
    written: list[Path] = []
    if any(scalars.values()):
        fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 4), dpi=100, squeeze=False)
        for ax, r in zip(axes[0], runs):
            s = scalars[r.label]
            terms = [t for t in s if t.startswith("train/loss")]
            for t in sorted(terms, key=lambda t: (t != "train/loss", t)):
                x = np.array([p for p, _ in s[t]], float) / max(r.steps_per_epoch, 1)
                ax.plot(x, [v for _, v in s[t]], lw=2.0 if t == "train/loss" else 1.0,
                        label=t.split("/", 1)[1])
            ax.set_title(r.label)
            ax.set_xlabel("epoch")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
            if terms:
                ax.legend(fontsize=7)
        axes[0][0].set_ylabel("training loss (mean over the logging window)")
        fig.tight_layout()
        written.append(save_figure(fig, out_dir / "curves_loss.png"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    drawn = False
    for ax, m in ((axes[0], metric), (axes[1], second_metric)):
        name = region_title(m.split("/")[0]).lower()
        for k, r in enumerate(runs):
            pts = scalars[r.label].get(f"val/{m}", [])
            if pts:
                drawn = True
                x = np.array([p for p, _ in pts], float) / max(r.steps_per_epoch, 1)
                ax.plot(x, [v for _, v in pts], "o-", color=MODEL_COLOURS[k % len(MODEL_COLOURS)], label=r.label)
        ax.set_title(f"validation {m.split('/')[-1]} ({name})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("3D AP|R11 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    if drawn:
        written.append(save_figure(fig, out_dir / "curves_val_map.png"))
    else:
        plt.close(fig)
    return written


def pick_frames(label_counts: list[tuple[str, np.ndarray]], n: int, n_classes: int) -> list[str]:
    """``n`` frames worth looking at: spread over the split (one per ``n`` equal parts), in each
    part the frame with the most classes present, then the most labeled objects.
    ``label_counts``: (frame id, class indices of its GT boxes) in split order."""
    if n <= 0 or not label_counts:
        return []
    parts = np.array_split(np.arange(len(label_counts)), min(n, len(label_counts)))
    chosen = []
    for idx in parts:
        def key(i: int) -> tuple[int, int]:
            labs = label_counts[i][1]
            labs = labs[(labs >= 0) & (labs < n_classes)]
            return len(set(labs.tolist())), len(labs)
        chosen.append(label_counts[max(idx.tolist(), key=key)][0])
    return chosen
