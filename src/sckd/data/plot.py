"""Bird's-eye picture of one frame (matplotlib, Agg backend, no display needed).

x (forward) is drawn to the right and y (left) upwards, both in metres in the radar frame.
Radar points are coloured by compensated radial velocity (the feature ``v_r_comp`` if present,
else ``v_r``), LiDAR points are grey, boxes use one colour per class with a tick from the
centre to the front face to show the heading.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sckd.data.types import Frame
from sckd.errors import SckdError
from sckd.ops.boxes import bev_corners

_CLASS_COLOURS = ["tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown"]
_OTHER_COLOUR = "0.45"


def velocity_column(features: list[str]) -> int | None:
    for name in ("v_r_comp", "v_r"):
        if name in features:
            return features.index(name)
    return None


def plot_frame_bev(frame: Frame, out: str | Path, radar_features: list[str], classes: list[str],
                   pc_range: list[float] | None = None, title: str | None = None,
                   scores: np.ndarray | None = None) -> Path:
    """Write a BEV PNG of ``frame`` to ``out`` and return the path. With ``scores`` (one per
    box: the boxes are detections) each box is labelled with its class and score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    fig, ax = plt.subplots(figsize=(9, 9), dpi=110)
    try:
        if frame.lidar is not None and len(frame.lidar):
            ax.scatter(frame.lidar[:, 0], frame.lidar[:, 1], s=0.3, c="0.7", linewidths=0, label="LiDAR")
        vcol = velocity_column(radar_features)
        if len(frame.radar):
            if vcol is not None:
                v = frame.radar[:, vcol]
                lim = max(float(np.abs(v).max()), 1e-3)
                sc = ax.scatter(frame.radar[:, 0], frame.radar[:, 1], s=8, c=v, cmap="coolwarm",
                                vmin=-lim, vmax=lim, label="radar")
                fig.colorbar(sc, ax=ax, shrink=0.7, label=f"{radar_features[vcol]} (m/s)")
            else:
                ax.scatter(frame.radar[:, 0], frame.radar[:, 1], s=8, c="k", label="radar")
        corners = bev_corners(np.asarray(frame.boxes, dtype=np.float64)) if len(frame.boxes) else []
        seen: set[str] = set()
        for k, c in enumerate(corners):
            lab = int(frame.labels[k]) if k < len(frame.labels) else -1
            name = classes[lab] if lab >= 0 else "other"
            colour = _CLASS_COLOURS[lab % len(_CLASS_COLOURS)] if lab >= 0 else _OTHER_COLOUR
            poly = np.vstack([c, c[:1]])
            ax.plot(poly[:, 0], poly[:, 1], color=colour, lw=1.2, ls="-" if lab >= 0 else "--",
                    label=None if name in seen else name)
            seen.add(name)
            b = frame.boxes[k]
            front = (c[0] + c[3]) / 2  # corners 0 and 3 are the +l/2 face
            ax.plot([b[0], front[0]], [b[1], front[1]], color=colour, lw=1.2)
            if scores is not None:
                ax.annotate(f"{name} {float(scores[k]):.2f}", (float(c[:, 0].max()), float(c[:, 1].max())),
                            fontsize=7, color=colour, annotation_clip=True)
        if pc_range is not None:
            ax.set_xlim(pc_range[0], pc_range[3])
            ax.set_ylim(pc_range[1], pc_range[4])
        ax.set_aspect("equal")
        ax.set_xlabel("x forward (m)")
        ax.set_ylabel("y left (m)")
        ax.set_title(title or f"frame {frame.frame_id}")
        ax.legend(loc="upper right", fontsize=8, markerscale=2)
        try:
            fig.savefig(out)
        except OSError as e:
            raise SckdError(f"{out}: cannot write picture ({e.strerror})") from None
    finally:
        plt.close(fig)
    return out
