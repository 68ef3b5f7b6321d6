"""Pictures for the report (matplotlib, Agg backend): training curves read back from the runs'
TensorBoard scalars, and bird's-eye views of one frame with several models' boxes side by side.

Coordinates of the BEV panels: radar frame, x forward drawn to the right, y left upwards, metres.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sckd.data.plot import velocity_column
from sckd.data.types import Frame
from sckd.errors import SckdError
from sckd.eval.result import region_title
from sckd.ops.boxes import bev_corners

log = logging.getLogger("sckd")

CLASS_COLOURS = ["tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown"]
MODEL_COLOURS = ["tab:purple", "tab:gray", "tab:orange", "tab:cyan", "tab:olive", "tab:pink"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path) -> Path:
    try:
        fig.savefig(out)
    except OSError as e:
        raise SckdError(f"{out}: cannot write picture ({e.strerror})") from None
    finally:
        _plt().close(fig)
    return out


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
    plt = _plt()
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
        written.append(_save(fig, out_dir / "curves_loss.png"))
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
        written.append(_save(fig, out_dir / "curves_val_map.png"))
    else:
        plt.close(fig)
    return written


# --------------------------------------------------------------------------------- BEV panels

@dataclass
class BoxSet:
    """Boxes one panel shows: (K, 7) radar-frame boxes, class indices (-1: other), scores or None."""

    title: str
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray | None = None
    show_lidar: bool = False


def _draw_boxes(ax, boxes: np.ndarray, labels: np.ndarray, classes: list[str], *, lw: float, ls: str,
                alpha: float = 1.0, seen: set[str] | None = None) -> None:
    if not len(boxes):
        return
    for k, c in enumerate(bev_corners(np.asarray(boxes, dtype=np.float64))):
        lab = int(labels[k])
        colour = CLASS_COLOURS[lab % len(CLASS_COLOURS)] if lab >= 0 else "0.45"
        name = classes[lab] if lab >= 0 else "other"
        poly = np.vstack([c, c[:1]])
        label = None
        if seen is not None and name not in seen:
            seen.add(name)
            label = name
        ax.plot(poly[:, 0], poly[:, 1], color=colour, lw=lw, ls=ls, alpha=alpha, label=label)
        front = (c[0] + c[3]) / 2  # corners 0 and 3 are the +l/2 face: the heading tick
        ax.plot([boxes[k][0], front[0]], [boxes[k][1], front[1]], color=colour, lw=lw, alpha=alpha)


def plot_bev_panels(frame: Frame, panels: list[BoxSet], out: Path, radar_features: list[str],
                    classes: list[str], pc_range: list[float], gt: BoxSet | None = None) -> Path:
    """One row of BEV panels of ``frame`` (same points, different boxes). ``gt``, when given, is
    drawn thin and dashed under every panel that is not itself the GT."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.0, 4.6), dpi=100, squeeze=False,
                             layout="constrained")
    vcol = velocity_column(radar_features)
    v = frame.radar[:, vcol] if (vcol is not None and len(frame.radar)) else None
    lim = max(float(np.percentile(np.abs(v), 98)), 1.0) if v is not None else 1.0
    sc = None
    for ax, p in zip(axes[0], panels):
        if p.show_lidar and frame.lidar is not None and len(frame.lidar):
            ax.scatter(frame.lidar[:, 0], frame.lidar[:, 1], s=0.2, c="0.75", linewidths=0)
        if len(frame.radar):
            # a dark rim keeps static radar points (white in the colour map) visible over LiDAR
            sc = ax.scatter(frame.radar[:, 0], frame.radar[:, 1], s=7, c=v if v is not None else "k",
                            cmap="coolwarm", vmin=-lim, vmax=lim, edgecolors="0.2", linewidths=0.3)
        if gt is not None and p is not gt:
            _draw_boxes(ax, gt.boxes, gt.labels, classes, lw=0.8, ls=":", alpha=0.8)
        seen: set[str] = set()
        _draw_boxes(ax, p.boxes, p.labels, classes, lw=1.4, ls="-", seen=seen)
        ax.set_xlim(pc_range[0], pc_range[3])
        ax.set_ylim(pc_range[1], pc_range[4])
        ax.set_aspect("equal")
        ax.set_xlabel("x forward (m)")
        ax.set_title(f"{p.title} ({len(p.boxes)} boxes)", fontsize=10)
        if seen:
            ax.legend(loc="upper right", fontsize=7)
    axes[0][0].set_ylabel("y left (m)")
    if sc is not None and v is not None:
        fig.colorbar(sc, ax=list(axes[0]), shrink=0.9, pad=0.01, label=f"radar {radar_features[vcol]} (m/s)")
    fig.suptitle(f"frame {frame.frame_id}")
    return _save(fig, out)


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
