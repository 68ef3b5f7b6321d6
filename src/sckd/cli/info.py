"""``sckd info ROOT``: dataset statistics as a table, and optionally a BEV picture of a frame."""

from __future__ import annotations

import argparse
import logging

from sckd.errors import SckdError, warnings

log = logging.getLogger("sckd")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="dataset statistics (points, boxes, points in boxes) and BEV plots",
                       description="Print statistics of a dataset split; --plot draws one frame.")
    p.add_argument("root", metavar="ROOT", help="dataset root (e.g. view_of_delft_PUBLIC)")
    p.add_argument("--dataset", default=None,
                   help="vod | tj4d | synth | astyx | PATH.yaml (default: astyx for a folder with dataset.json, "
                        "synth for a synthetic world, else vod)")
    p.add_argument("--split", default="train", help="split to analyse (default train)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="analyse only the first N frames")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="config override, e.g. dataset.radar.tree=radar (repeatable)")
    p.add_argument("--plot", metavar="FRAME_ID", help="write a bird's-eye PNG of this frame")
    p.add_argument("--out", metavar="PNG", help="output file for --plot")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sckd.data.resolve import resolve_dataset

    if args.max_frames is not None and args.max_frames < 1:
        raise SckdError(f"--max-frames {args.max_frames}: must be at least 1")
    if args.plot is not None and not args.out:
        raise SckdError("--plot: needs --out PNG")
    cfg = resolve_dataset(args.dataset or args.root, root=args.root, overrides=args.overrides)
    if args.plot is not None:
        _plot(cfg, args.plot, args.out)
    else:
        from sckd.data.stats import dataset_stats, format_stats

        stats = dataset_stats(cfg, args.split, max_frames=args.max_frames, progress=not args.no_progress)
        print(format_stats(stats))
    for line in warnings.summary():
        log.warning("warning: %s", line)
    return 0


def _plot(cfg, frame_id: str, out: str) -> None:
    from sckd.data.dataset import RadarDataset
    from sckd.data.layout import DatasetLayout
    from sckd.report.bev import plot_frame_bev

    layout = DatasetLayout(cfg)
    label = layout.label_file(frame_id)
    labeled = label is not None and label.is_file()
    ds = RadarDataset(cfg, "plot", labeled=labeled, frame_ids=[frame_id])
    frame = ds.load(0)
    path = plot_frame_bev(frame, out, cfg.radar.features, cfg.classes, cfg.point_cloud_range,
                          title=f"{cfg.name} frame {frame_id}")
    print(f"wrote {path}")
