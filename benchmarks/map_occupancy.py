"""How much of a trained teacher's bird's-eye grid each notion of "occupied" marks.

    python benchmarks/map_occupancy.py DATA TEACHER.pt [TEACHER.pt ...] [--frames 20]

For each checkpoint, over ``--frames`` frames spread over the val split of DATA (a dataset root
or a synthetic world): the share of cells where each branch map and the fused map is non-zero
in any channel (the first definition of ``distill.region.mode=occupied``), and the share of
cells holding a radar or LiDAR point (``point_cell_mask``, the definition now used). With dense
3x3 BEV convs after the pillar scatter the first is close to 1: no weighting at all.
"""

from __future__ import annotations

import argparse
import sys

import torch

from sckd.data.dataset import RadarDataset, collate
from sckd.distill.regions import point_cell_mask
from sckd.errors import SckdError
from sckd.experiment.predict import load_trained_model


def shares(data: str, checkpoint: str, frames: int) -> dict[str, float]:
    exp, model = load_trained_model(checkpoint, data)
    ds = RadarDataset(exp.dataset, "val", with_lidar=exp.needs_lidar, labeled=True)
    picks = sorted({round(i * (len(ds) - 1) / max(frames - 1, 1)) for i in range(min(frames, len(ds)))})
    sums: dict[str, float] = {}
    with torch.no_grad():
        for i in picks:
            b = collate([ds.load(i)])
            branches = model.encode_branches(b)
            maps = {**branches, "fused": model.fusion(branches)}
            for name, m in maps.items():
                sums[f"{name} map non-zero"] = sums.get(f"{name} map non-zero", 0.0) + float((m != 0).any(1).float().mean())
            h, w = maps["fused"].shape[-2:]
            clouds = [b.radar] + ([b.lidar] if b.lidar is not None else [])
            cells = point_cell_mask(clouds, 1, list(exp.dataset.point_cloud_range), h, w)
            sums["cells holding a point"] = sums.get("cells holding a point", 0.0) + float(cells.mean())
    return {k: v / len(picks) for k, v in sums.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--frames", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    try:
        for ck in args.checkpoints:
            print(ck, "  ".join(f"{k}: {v:.3f}" for k, v in shares(args.data, ck, args.frames).items()))
    except SckdError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
