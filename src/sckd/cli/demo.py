"""``sckd demo``: the main job on the embedded synthetic world, in resumable stages."""

from __future__ import annotations

import argparse
from pathlib import Path

from sckd.errors import SckdError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on a synthetic world (no download needed)",
                       description="Generate a synthetic radar + LiDAR world and report its statistics.")
    p.add_argument("--out", default=str(Path.home() / ".cache" / "sckd" / "demo"),
                   help="output folder (default ~/.cache/sckd/demo); rerunning resumes")
    p.add_argument("--quick", action="store_true", help="a smaller world")
    p.add_argument("--frames", type=int, default=None, help="frames in the world")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sckd.data.layout import load_dataset_config
    from sckd.data.stats import dataset_stats, format_stats
    from sckd.data.synth import load_synth_config, synthesize

    out = Path(args.out).expanduser()
    frames = args.frames or (120 if args.quick else 600)
    if frames < 1:
        raise SckdError(f"--frames {frames}: must be at least 1")
    world = out / "world"
    if not (world / "synth_config.yaml").is_file():
        print(f"[1/2] synthetic world: {frames} frames -> {world}")
        rep = synthesize(world, frames, args.seed, load_synth_config(), workers=2)
        print(f"      {rep.frames_per_second:.1f} frames/s")
    else:
        print(f"[1/2] synthetic world: found {world}, reusing it")
    print("[2/2] statistics (single-scan radar tree, train split)")
    cfg = load_dataset_config("synth", root=str(world), overrides=["dataset.radar.tree=radar"])
    print(format_stats(dataset_stats(cfg, "train", progress=True)))
    return 0
