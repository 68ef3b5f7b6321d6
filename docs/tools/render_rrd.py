"""Draw one frame of an ``sckd view`` recording with matplotlib (a picture for docs/view.md).

    python docs/tools/render_rrd.py astyx.rrd view_astyx_000093.png [--step 0]

Reads the recording back with Rerun's own reader (as tests/test_view.py does) and draws the
radar points in their recorded colours (radial speed), the LiDAR in grey and every box entity,
in 3D from behind the sensor and from the side (z against x), where multipath below the road
shows. Needs ``sckd[viz]`` and matplotlib.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from rerun.chunk import RrdReader  # noqa: E402

EDGES = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)]
X, Y, Z = (0.0, 60.0), (-25.0, 25.0), (-8.0, 6.0)


def read_step(path: str, step: int) -> dict[str, dict[str, list]]:
    """entity -> component -> value at ``step`` of the ``frame`` timeline (static rows too)."""
    out: dict[str, dict[str, list]] = {}
    for chunk in RrdReader(path).stream().collect().stream():
        rb = chunk.to_record_batch()
        cols = {f.name: rb.column(i).to_pylist() for i, f in enumerate(rb.schema) if "time" not in f.name}
        for row, s in enumerate(cols.get("frame", [None] * rb.num_rows)):
            if s is None or s == step:
                out[chunk.entity_path] = {k: v[row] for k, v in cols.items()}
    return out


def rgb(packed) -> np.ndarray:
    c = np.atleast_1d(np.asarray(packed, dtype=np.uint64))
    return np.stack([(c >> 24) & 255, (c >> 16) & 255, (c >> 8) & 255], 1).astype(float) / 255.0


def corners(centre, half, quat) -> np.ndarray:
    x, y, z, w = quat
    r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    signs = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], dtype=float)
    return (signs * np.asarray(half)) @ r.T + np.asarray(centre)


def inside(p: np.ndarray) -> np.ndarray:
    return ((p[:, 0] >= X[0]) & (p[:, 0] <= X[1]) & (p[:, 1] >= Y[0]) & (p[:, 1] <= Y[1])
            & (p[:, 2] >= Z[0]) & (p[:, 2] <= Z[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rrd")
    ap.add_argument("png")
    ap.add_argument("--step", type=int, default=0, help="step of the frame timeline (default 0)")
    a = ap.parse_args()
    ent = read_step(a.rrd, a.step)
    radar = np.asarray(ent["/world/radar"]["Points3D:positions"], dtype=float)
    colours = rgb(ent["/world/radar"]["Points3D:colors"])
    lidar = np.asarray(ent.get("/world/lidar", {}).get("Points3D:positions", np.zeros((0, 3))), dtype=float)
    boxes = {e[len("/world/boxes/"):]: v for e, v in ent.items() if e.startswith("/world/boxes/")}
    fid = ent.get("/frame_id", {}).get("TextDocument:text", "")
    fid = fid[0] if isinstance(fid, list) and fid else fid
    fig = plt.figure(figsize=(14, 6.5))
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    side = fig.add_subplot(1, 2, 2)
    lk, rk = inside(lidar), inside(radar)
    ax.scatter(*lidar[lk].T, s=0.3, c="0.6", alpha=0.5, label=f"LiDAR ({len(lidar)} points)")
    ax.scatter(*radar[rk].T, s=4, c=colours[rk], label=f"radar ({len(radar)} points), colour = radial speed")
    side.scatter(lidar[lk][:, 0], lidar[lk][:, 2], s=0.3, c="0.6")
    side.scatter(radar[:, 0], radar[:, 2], s=4, c=colours)
    for name, b in boxes.items():
        col = rgb(b["Boxes3D:colors"])
        for i, (c, h, q) in enumerate(zip(b["Boxes3D:centers"], b["Boxes3D:half_sizes"], b["Boxes3D:quaternions"])):
            k = corners(c, h, q)
            colour = col[min(i, len(col) - 1)]
            for s, e in EDGES:
                ax.plot(*k[[s, e]].T, color=colour, lw=1)
            side.add_patch(plt.Rectangle((c[0] - h[0], c[2] - h[2]), 2 * h[0], 2 * h[2], fill=False, ec=colour))
    ax.set(xlim=X, ylim=Y, zlim=Z, xlabel="x forward (m)", ylabel="y left (m)", zlabel="z (m)")
    ax.set_box_aspect((X[1] - X[0], Y[1] - Y[0], 2 * (Z[1] - Z[0])))
    ax.view_init(elev=25, azim=-150)
    ax.legend(loc="upper left", fontsize=8)
    counts = ", ".join(f"{n} {len(b['Boxes3D:centers'])}" for n, b in boxes.items())
    ax.set_title(f"frame {fid}: boxes {counts}")
    side.axhline(-2.5, color="r", lw=0.5, ls="--")
    side.set(xlim=(0, 100), ylim=(-12, 6), xlabel="x forward (m)", ylabel="z (m)",
             title="side view: radar points below the road (dashed: z = -2.5 m) are multipath")
    fig.tight_layout()
    fig.savefig(a.png, dpi=80)
    print(f"{a.png}: {len(radar)} radar, {len(lidar)} LiDAR points, boxes {counts}")


if __name__ == "__main__":
    main()
