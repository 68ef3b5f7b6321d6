"""The bird's-eye plotter (matplotlib, Agg backend, no display needed): one frame's points and
boxes, in one panel (``sckd info --plot``, ``sckd predict --plot``) or in a row of panels with
several models' boxes over the same points (the demo's and ``sckd reproduce``'s figures).

Radar frame, x forward drawn to the right, y left upwards, metres. Radar points are coloured by
compensated radial velocity (``v_r_comp`` if present, else ``v_r``), LiDAR points are grey, boxes
have one colour per class and a tick from the centre to the front face (the heading).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sckd.data.types import Frame
from sckd.errors import SckdError
from sckd.ops.boxes import bev_corners

CLASS_COLOURS = ["tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown"]
OTHER_COLOUR = "0.45"


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out: Path) -> Path:
    try:
        fig.savefig(out)
    except OSError as e:
        raise SckdError(f"{out}: cannot write picture ({e.strerror})") from None
    finally:
        pyplot().close(fig)
    return out


def velocity_column(features: list[str]) -> int | None:
    for name in ("v_r_comp", "v_r"):
        if name in features:
            return features.index(name)
    return None


@dataclass
class BoxSet:
    """Boxes one panel shows: (K, 7) radar-frame boxes, class indices (-1: other), scores
    (drawn next to each box) or None."""

    title: str
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray | None = None
    show_lidar: bool = False


def _draw_boxes(ax, boxes: np.ndarray, labels: np.ndarray, classes: list[str], *, lw: float, ls: str,
                alpha: float = 1.0, seen: set[str] | None = None, scores: np.ndarray | None = None) -> None:
    if not len(boxes):
        return
    for k, c in enumerate(bev_corners(np.asarray(boxes, dtype=np.float64))):
        lab = int(labels[k]) if k < len(labels) else -1
        colour = CLASS_COLOURS[lab % len(CLASS_COLOURS)] if lab >= 0 else OTHER_COLOUR
        name = classes[lab] if lab >= 0 else "other"
        poly = np.vstack([c, c[:1]])
        label = None
        if seen is not None and name not in seen:
            seen.add(name)
            label = name
        ax.plot(poly[:, 0], poly[:, 1], color=colour, lw=lw, ls=ls if lab >= 0 else "--", alpha=alpha, label=label)
        front = (c[0] + c[3]) / 2  # corners 0 and 3 are the +l/2 face: the heading tick
        ax.plot([boxes[k][0], front[0]], [boxes[k][1], front[1]], color=colour, lw=lw, alpha=alpha)
        if scores is not None:
            ax.annotate(f"{name} {float(scores[k]):.2f}", (float(c[:, 0].max()), float(c[:, 1].max())),
                        fontsize=7, color=colour, annotation_clip=True)


def plot_bev_panels(frame: Frame, panels: list[BoxSet], out: Path, radar_features: list[str],
                    classes: list[str], pc_range: list[float] | None, gt: BoxSet | None = None,
                    title: str | None = None, panel_size: float = 4.2) -> Path:
    """One row of BEV panels of ``frame`` (same points, different boxes). ``gt``, when given, is
    drawn thin and dotted under every panel that is not itself the GT."""
    plt = pyplot()
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(panel_size * n + 1.0, panel_size + 0.4), dpi=100, squeeze=False,
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
        _draw_boxes(ax, p.boxes, p.labels, classes, lw=1.4, ls="-", seen=seen, scores=p.scores if n == 1 else None)
        if pc_range is not None:
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
    fig.suptitle(title or f"frame {frame.frame_id}")
    return save_figure(fig, out)


def plot_frame_bev(frame: Frame, out: str | Path, radar_features: list[str], classes: list[str],
                   pc_range: list[float] | None = None, title: str | None = None,
                   scores: np.ndarray | None = None) -> Path:
    """One panel: ``frame``'s points and its boxes (labels, or detections when ``scores`` is
    given: each box then carries its class and score)."""
    boxes = BoxSet("detections" if scores is not None else "boxes", np.asarray(frame.boxes),
                   np.asarray(frame.labels), scores, show_lidar=True)
    return plot_bev_panels(frame, [boxes], Path(out), radar_features, classes, pc_range, title=title, panel_size=8.0)
