"""``sckd synth OUT --frames N --seed S``: write a synthetic 4D-radar + LiDAR world (VoD layout)."""

from __future__ import annotations

import argparse
import sys

from sckd.errors import SckdError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a synthetic radar + LiDAR dataset in the View-of-Delft layout",
                       description="Simulate urban street sequences (radar, LiDAR, labels) and write them "
                                   "as a complete VoD-style tree with train/val/unlabeled splits.")
    p.add_argument("out", metavar="OUT", help="output folder (new, empty, or an earlier synthetic world)")
    p.add_argument("--frames", type=int, default=1000, help="number of frames (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")
    p.add_argument("--config", default=None, help="YAML with a synth: section (default: synth/default.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set synth.radar.false_alarms=30 (repeatable)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (output does not depend on it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sckd.data.synth.config import load_synth_config
    from sckd.data.synth.world import plan_sequences, synthesize

    cfg = load_synth_config(args.config, args.overrides)
    plan_sequences(cfg, args.frames, args.seed)  # argument errors before the progress bar appears
    if args.workers < 1:
        raise SckdError(f"--workers {args.workers}: need at least 1 worker")
    bar = None
    if not args.no_progress:
        from tqdm import tqdm
        bar = tqdm(total=args.frames, unit="frame", desc="synth", file=sys.stderr, dynamic_ncols=True)
    try:
        report = synthesize(args.out, args.frames, args.seed, cfg, workers=args.workers,
                            progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    sizes = ", ".join(f"{k} {len(v)}" for k, v in report.splits.items())
    print(f"wrote {report.frames} frames in {len(report.sequences)} sequences ({sizes}) to {report.out}")
    print(f"{report.seconds:.1f} s, {report.frames_per_second:.1f} frames/s with {report.workers} worker(s)")
    if report.realism.points:
        print("\n".join(report.realism.table()))
    return 0
